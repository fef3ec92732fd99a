"""The real embedded MiniLM on real SST-2 rows."""

import json
from pathlib import Path

import pytest

from blockprune_pl import train

pytestmark = pytest.mark.slow


def test_minilm_prunes_a_few_hundred_sst2_rows_and_writes_metrics(glue, tmp_path):
    from tests.conftest import compose

    cfg = compose(
        [
            f"task.data_dir={glue}",
            "task.train_limit=256",
            "task.val_limit=128",
            "optim.lr=1e-4",
            "prune.rate=5.0",
            "prune.phase_unit=step",
            "prune.phases.finetune=8",
            "prune.phases.penalty=4",
            "prune.phases.retrain=4",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path,
    )
    results = train.run(cfg)
    saved = json.loads(Path(tmp_path, "metrics.json").read_text())
    assert saved["model"] == "minilm" and saved["params"]["total"] > 22_000_000
    assert 0.0 <= saved["final"]["val/acc"] <= 1.0
    assert saved["pruning"]["prunable_params"] == 6 * (4 * 384 * 384 + 2 * 384 * 1536)
    # the default preset (neurons_split): 5 of 12 whole heads in every layer, whole FFN neurons
    # making up the rate asked (about 141 of 1,536 per layer, not the ratio's 0.08)
    pruning = saved["pruning"]
    assert saved["config"]["prune"]["geometry"] == "neurons"
    assert (pruning["kept_heads"], pruning["total_heads"]) == (30, 72)
    assert pruning["total_neurons"] == 6 * 1536
    assert pruning["kept_neurons"] / pruning["total_neurons"] == pytest.approx(0.0917, abs=1e-3)
    assert pruning["kept_prunable_params"] == 30 * 4 * 32 * 384 + pruning["kept_neurons"] * 2 * 384
    assert results["pruning"]["achieved_rate"] == pytest.approx(5.0, abs=0.01)
    assert pruning["density_per_role"]["q"] == pytest.approx(5 / 12)
