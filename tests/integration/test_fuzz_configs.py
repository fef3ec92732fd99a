"""Configs drawn at random from every group, inside and outside the allowed values: each run on a
tiny model either finishes (the rate reached, metrics.json complete, every export loadable) or
stops before training with the project's error type, naming a key it was given. A raw Python
error is a failure. FUZZ_EXAMPLES sets the number of draws (`make fuzz` runs many)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from blockprune_pl import train  # noqa: E402
from blockprune_pl.errors import ConfigError, DataError, ModelLoadError  # noqa: E402
from tests.conftest import TINY_RUN, compose, glue_dir  # noqa: E402

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
WRONG_TYPE = st.sampled_from(["abc", "[1,2]", "true"])
VALUES = {
    "prune": st.sampled_from(
        [
            "bsp",
            "bsp_paper",
            "tiles",
            "neurons",
            "hybrid",
            "heads_bsp",
            "irregular",
            "magnitude",
            "dense",
            "rows",
        ]
    ),
    "prune.rate": st.one_of(
        st.floats(0.5, 600, allow_nan=False), st.sampled_from(["nan", "inf", 1.0]), WRONG_TYPE
    ),
    "prune.block": st.tuples(st.integers(-1, 40), st.integers(-1, 40)).map(
        lambda b: f"[{b[0]},{b[1]}]"
    ),
    "prune.col_blocks": st.one_of(st.integers(-1, 40), WRONG_TYPE),
    "prune.scope": st.sampled_from(["layer", "global", "row"]),
    "prune.schedule": st.sampled_from(["one_shot", "cubic", "linear"]),
    "prune.target": st.sampled_from(["all", "doomed", "some"]),
    "prune.score": st.sampled_from(["norm", "fisher", "taylor"]),
    "prune.lam_per": st.sampled_from(["step", "phase", "epoch"]),
    "prune.penalty_mode": st.sampled_from(["grad", "proximal", "prox"]),
    "prune.lam": st.one_of(st.floats(-1, 20, allow_nan=False), WRONG_TYPE),
    "prune.eps": st.floats(-0.1, 1, allow_nan=False),
    "prune.balance": st.booleans(),
    "prune.refit": st.booleans(),
    "prune.freeze_embeddings": st.one_of(st.booleans(), WRONG_TYPE),
    "prune.refit_rows": st.one_of(st.integers(-1, 40), WRONG_TYPE),
    "prune.min_density": st.floats(-0.5, 1.5, allow_nan=False),
    "prune.reweight_every": st.integers(-1, 5),
    "prune.prune_every": st.integers(-1, 3),
    "prune.phases.finetune": st.integers(-1, 3),
    "prune.phases.penalty": st.integers(-1, 3),
    "prune.phases.retrain": st.integers(-1, 3),
    "prune.distill.enabled": st.booleans(),
    "prune.distill.alpha": st.floats(-0.5, 1.5, allow_nan=False),
    "prune.distill.temperature": st.floats(-1, 4, allow_nan=False),
    "prune.distill.augment": st.floats(-0.5, 1.5, allow_nan=False),
    "task.train_limit": st.sampled_from(["null", -3, 0, 1, 7, 40]),
    "optim.batch_size": st.sampled_from([1, 8, 16, 0, -2]),
    "export.formats": st.lists(
        st.sampled_from(["hf", "compact", "gathered", "onnx", "int8", "tflite"]),
        max_size=2,
        unique=True,
    ).map(lambda f: "[" + ",".join(f) + "]"),
}
USER_ERRORS = (ConfigError, DataError, ModelLoadError)


def _hydra_errors():
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return (HydraException, OmegaConfBaseException)


@st.composite
def overrides(draw):
    keys = draw(st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=6, unique=True))
    return {key: draw(VALUES[key]) for key in keys}


def _run(drawn: dict, out: Path):
    listed = [f"{k}={v}" for k, v in drawn.items()]
    cfg = compose(
        [
            f"task.data_dir={glue_dir()}",
            *TINY_RUN,
            "task.val_limit=16",
            "prune.phases.finetune=1",
            "prune.phases.penalty=2",
            "prune.phases.retrain=1",
            "export.formats=[]",
            *listed,
        ],
        out,
    )
    return cfg, train.run(cfg)


@pytest.mark.skipif(glue_dir() is None, reason="real GLUE Parquet folder not found")
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(drawn=overrides())
def test_a_drawn_config_runs_or_is_refused_by_name(drawn):
    with tempfile.TemporaryDirectory() as tmp:
        try:
            cfg, results = _run(drawn, Path(tmp) / "run")
        except USER_ERRORS + _hydra_errors() as err:
            named = [k for k in drawn if k.split(".")[-1] in str(err) or k in str(err)]
            assert named, f"{type(err).__name__} names none of {list(drawn)}: {err}"
            return
        saved = json.loads((Path(tmp) / "run" / "metrics.json").read_text())
        assert saved["final"] and saved["config"]["prune"]["rate"] == cfg.prune.rate
        target = float(cfg.prune.rate)
        if target > 1 and math.isfinite(target):
            # within about one group per matrix of the target density on the tiny model
            assert abs(saved["pruning"]["density"] - 1 / target) <= 0.25, saved["pruning"]
        for folder in (saved.get("exports") or {}).values():
            from blockprune_pl.export import load_pruned

            ids = torch.randint(5, 90, (2, 7))
            assert torch.isfinite(load_pruned(folder)(input_ids=ids).logits).all()
