import pytest
from omegaconf import OmegaConf

from blockprune_pl.callbacks import PhasePlan
from blockprune_pl.errors import ConfigError
from blockprune_pl.models.module import phased_linear_schedule
from blockprune_pl.pruning.masks import cubic_density
from blockprune_pl.train import phase_plan


def test_each_phase_warms_up_then_decays_to_zero():
    f = phased_linear_schedule([(10, 1.0), (20, 2.0)], warmup_ratio=0.1)
    assert f(0) == pytest.approx(1.0)  # warm-up of 1 step
    assert f(5) == pytest.approx(5 / 9)
    assert f(10) == pytest.approx(2.0 * 1 / 2)  # 2-step warm-up of the second phase
    assert f(11) == pytest.approx(2.0)
    assert f(29) == pytest.approx(2.0 * 1 / 18)
    assert f(30) == 0.0


def test_cubic_density_goes_from_one_to_the_target():
    assert cubic_density(0, 0, 100, 0.2) == pytest.approx(1.0)
    assert cubic_density(100, 0, 100, 0.2) == pytest.approx(0.2)
    assert cubic_density(50, 0, 100, 0.2) == pytest.approx(0.2 + 0.8 * 0.125)
    values = [cubic_density(s, 0, 100, 0.2) for s in range(101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_phase_plan_in_epochs_and_dense_runs_skip_pruning_phases():
    cfg = OmegaConf.create(
        {
            "phase_unit": "epoch",
            "rate": 5.0,
            "phases": {"finetune": 1, "penalty": 0.5, "retrain": 2},
        }
    )
    plan = phase_plan(cfg, steps_per_epoch=10)
    assert plan == PhasePlan(10, 5, 20) and plan.prune_at == 15 and plan.total == 35
    assert [plan.phase(s) for s in (0, 9, 10, 14, 15)] == [
        "finetune",
        "finetune",
        "penalty",
        "penalty",
        "retrain",
    ]
    cfg.rate = 1.0
    assert phase_plan(cfg, 10) == PhasePlan(10, 0, 0)
    cfg.phase_unit = "minute"
    with pytest.raises(ConfigError, match="prune.phase_unit='minute'"):
        phase_plan(cfg, 10)


def test_frozen_embeddings_under_plain_ddp_are_refused_with_the_strategy_to_use():
    from types import SimpleNamespace

    from lightning.pytorch.strategies import DDPStrategy

    from blockprune_pl.callbacks import PruningCallback
    from blockprune_pl.pruning import BlockPruner, PruneSpec
    from tests.unit.test_pruner import tiny

    pruner = BlockPruner(PruneSpec(rate=2.0)).prepare(tiny())
    callback = PruningCallback(pruner, PhasePlan(2, 2, 2), freeze_embeddings=True)
    module = SimpleNamespace(add_module=lambda name, m: None)
    with pytest.raises(ConfigError, match="ddp_find_unused_parameters_true"):
        callback.setup(SimpleNamespace(strategy=DDPStrategy()), module, "fit")
    allowed = SimpleNamespace(strategy=DDPStrategy(find_unused_parameters=True))
    callback.setup(allowed, module, "fit")
    with pytest.raises(ConfigError, match="prune.freeze_embeddings='yes' is not allowed"):
        PruningCallback(pruner, PhasePlan(2, 2, 2), freeze_embeddings="yes")
