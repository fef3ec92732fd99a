"""A run stopped mid-phase and resumed ends exactly where the uninterrupted run ends."""

from pathlib import Path

import pytest
import torch

from blockprune_pl import train
from tests.conftest import assert_same_state

# 64 rows / batch 16 = 4 steps an epoch; checkpoints at every epoch boundary
RUN = [
    "prune.rate=4.0",
    "prune.phases.finetune=8",
    "prune.phases.penalty=8",
    "prune.phases.retrain=8",
    "prune.reweight_every=3",
    "checkpoint_every_n_steps=4",
]


def pruner_state(ckpt_path):
    ckpt = torch.load(ckpt_path, weights_only=False)
    cb = next(v for k, v in ckpt["callbacks"].items() if "PruningCallback" in k)
    return ckpt["state_dict"], cb


@pytest.fixture(scope="module")
def uninterrupted(glue, tmp_path_factory):
    from tests.conftest import TINY_RUN, compose

    out = tmp_path_factory.mktemp("full")
    cfg = compose([f"task.data_dir={glue}", *TINY_RUN, *RUN], out)
    train.run(cfg)
    return out


@pytest.mark.parametrize("stop_step, phase", [(4, "finetune"), (12, "penalty"), (20, "retrain")])
def test_resume_mid_phase_restores_masks_alpha_and_weights_bit_for_bit(
    uninterrupted, tiny_cfg, stop_step, phase
):
    ckpt = uninterrupted / "checkpoints" / f"step{stop_step}.ckpt"
    assert ckpt.is_file()
    mid, _ = pruner_state(ckpt)
    assert (mid["pruner._extra_state"]["density"] < 1) == (phase == "retrain")
    cfg = tiny_cfg(*RUN, f"ckpt_path={ckpt}", out=f"resumed_{stop_step}")
    train.run(cfg)
    full_w, full = pruner_state(uninterrupted / "checkpoints" / "last.ckpt")
    res_w, res = pruner_state(Path(cfg.output_dir) / "checkpoints" / "last.ckpt")
    assert full["last_refresh"] == res["last_refresh"]
    assert_same_state(full_w, res_w)


def test_resume_under_another_rate_is_refused(uninterrupted, tiny_cfg):
    ckpt = uninterrupted / "checkpoints" / "step12.ckpt"
    cfg = tiny_cfg(
        *[r.replace("rate=4.0", "rate=2.0") for r in RUN], f"ckpt_path={ckpt}", out="wrong"
    )
    with pytest.raises(ValueError, match="prune.rate: checkpoint 4.0 vs run 2.0"):
        train.run(cfg)


def test_resume_before_a_refit_cut_refits_the_same_weights(glue, tmp_path, tiny_cfg):
    # the refit calibrates on a fixed subset of training rows, so a resumed run refits exactly
    from tests.conftest import TINY_RUN, compose

    refit = [*RUN, "prune.refit=true", "prune.refit_rows=24"]
    full = compose([f"task.data_dir={glue}", *TINY_RUN, *refit], tmp_path / "full")
    train.run(full)
    cfg = tiny_cfg(*refit, f"ckpt_path={tmp_path / 'full/checkpoints/step12.ckpt'}", out="resumed")
    train.run(cfg)
    full_w, _ = pruner_state(tmp_path / "full" / "checkpoints" / "last.ckpt")
    res_w, _ = pruner_state(Path(cfg.output_dir) / "checkpoints" / "last.ckpt")
    assert_same_state(full_w, res_w)
