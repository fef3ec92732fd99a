"""prune.score=fisher: groups ranked by the squared first-order change of the loss were they
removed, averaged over the steps, instead of by their norm."""

import dataclasses

import pytest
import torch

from blockprune_pl.callbacks.pruning import PhasePlan, PruningCallback
from blockprune_pl.errors import ConfigError
from blockprune_pl.pruning import BlockPruner, PruneSpec
from tests.unit.test_pruner import prepared, tiny


def _loss(model, ids):
    return model(input_ids=ids).logits.square().sum()


@pytest.mark.parametrize("geometry", ["neurons", "bsp"])
def test_grad_dots_are_the_loss_change_of_scaling_each_group(geometry):
    # d/ds L(group scaled by s) at s = 1 is sum_g w * dL/dw: what removing the group (s = 0)
    # costs to first order. Checked against a central difference for every group of a set.
    model = tiny().double().eval()
    pruner = BlockPruner(PruneSpec(geometry=geometry, rate=2.0, col_blocks=4)).prepare(model)
    ids = torch.randint(0, 99, (3, 7), generator=torch.Generator().manual_seed(0))
    _loss(model, ids).backward()
    for g in (pruner.groups[0], pruner.groups[-1]):
        dots = g.grad_dots()
        saved = {n: p.detach().clone() for n, p in g.params.items()}
        for i in range(0, len(g), max(1, len(g) // 5)):
            onehot = torch.zeros(len(g), dtype=torch.float64)
            onehot[i] = 1.0
            losses = []
            for s in (1e-4, -1e-4):
                with torch.no_grad():
                    for name, factor in g.expand(1.0 + s * onehot).items():
                        g.params[name].copy_(saved[name] * factor)
                    losses.append(float(_loss(model, ids)))
            with torch.no_grad():
                for name, p in g.params.items():
                    p.copy_(saved[name])
            assert float(dots[i]) == pytest.approx(
                (losses[0] - losses[1]) / 2e-4, rel=1e-4, abs=1e-8
            )


def test_fisher_keeps_a_small_group_the_loss_needs_and_norm_does_not():
    model, by_fisher = prepared("bsp", col_blocks=4, rate=2.0, qk="same", score="fisher")
    by_norm = BlockPruner(dataclasses.replace(by_fisher.spec, score="norm")).prepare(model)
    g = by_fisher.groups[0]
    weakest = int(torch.argmin(g.norms()))
    for p in model.parameters():
        p.grad = None
    # only the weakest group of the first matrix moves the loss
    grad = torch.zeros_like(g.weight)
    grad.add_(g.expand(torch.nn.functional.one_hot(torch.tensor(weakest), len(g)).float())[g.name])
    g.weight.grad = grad * g.weight.detach().sign()
    for _ in range(3):
        by_fisher.accumulate_fisher()
    assert not by_norm.select(0.5)[0][weakest]
    assert by_fisher.select(0.5)[0][weakest]
    assert int(by_fisher.fisher_steps) == 3


def test_targeted_penalty_waits_for_the_first_fisher_scores():
    model, pruner = prepared("neurons", rate=4.0, target="doomed", relative=True, score="fisher")
    pruner.refresh_alpha()
    assert all(int(a.count_nonzero()) == 0 for a in pruner.alpha)
    ids = torch.randint(0, 99, (4, 9), generator=torch.Generator().manual_seed(1))
    _loss(model, ids).backward()
    pruner.accumulate_fisher()
    pruner.refresh_alpha()
    for alpha, fisher, g in zip(pruner.alpha, pruner.fisher, pruner.groups):
        doomed = alpha > 0
        assert int(doomed.sum()) == len(g) - max(1, round(len(g) / 4))
        # the doomed groups are those whose removal the loss feels least
        assert float(fisher[doomed].max()) <= float(fisher[~doomed].min())


@pytest.mark.parametrize("penalty", [0, 1])
def test_fisher_needs_penalty_steps_to_rank_by(penalty):
    _, pruner = prepared("neurons", rate=4.0, score="fisher")
    with pytest.raises(ConfigError, match=f"penalty phase, which has {penalty} optimizer steps"):
        PruningCallback(pruner, PhasePlan(0, penalty, 10))


@pytest.mark.parametrize(
    "penalty, reweight_every, warmup", [(230, 20, 20), (4, 20, 2), (40, 0, 20), (3, 0, 1)]
)
def test_fisher_ranks_first_after_its_warmup_or_half_the_phase(penalty, reweight_every, warmup):
    _, pruner = prepared("neurons", rate=4.0, score="fisher")
    callback = PruningCallback(pruner, PhasePlan(0, penalty, 10), reweight_every=reweight_every)
    assert callback.fisher_warmup == warmup


def test_spec_rejects_an_unknown_score_naming_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"prune.score='taylor' is not allowed.*'norm', 'fisher'"):
        PruneSpec(score="taylor")
