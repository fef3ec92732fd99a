"""The recipe's penalty: targeted at the doomed groups, relative to each matrix's group norms,
strength stated per phase; and the report card (energy the prune removes)."""

import copy
import math

import pytest
import torch

from blockprune_pl.pruning import BlockPruner, PruneSpec
from tests.unit.test_pruner import prepared


def norms_by_group(pruner):
    return [n.detach().clone() for n in pruner.norms()]


def test_targeted_alpha_is_zero_exactly_on_the_groups_the_cut_keeps():
    model, pruner = prepared("bsp", col_blocks=4, target="doomed", rate=4.0)
    pruner.refresh_alpha()
    keep = pruner.select(0.25)
    for alpha, kept in zip(pruner.alpha, keep):
        assert torch.all(alpha[kept] == 0)
        assert torch.all(alpha[~kept] > 0)
        assert int((~kept).sum()) == 3 * len(kept) // 4


def test_targeted_proximal_steps_shrink_only_the_doomed_groups():
    model, pruner = prepared("bsp", col_blocks=4, target="doomed", relative=True, eps=0.1, rate=4.0)
    pruner.refresh_alpha()
    doomed = [~k for k in pruner.select(0.25)]
    before = norms_by_group(pruner)
    for _ in range(5):
        pruner.proximal_step(0.1)
    after = norms_by_group(pruner)
    for b, a, d in zip(before, after, doomed):
        torch.testing.assert_close(a[~d], b[~d])  # kept groups untouched
        assert torch.all(a[d] < 0.8 * b[d])  # every doomed group lost a fifth or more
    assert pruner.doomed_energy() < 0.5 * _share(before, doomed)


def _share(norms, doomed):
    held = sum(float(n.square().sum()) for n in norms)
    return sum(float(n[d].square().sum()) for n, d in zip(norms, doomed)) / held


def test_untargeted_penalty_shrinks_every_group():
    model, pruner = prepared("bsp", col_blocks=4, target="all", relative=True, rate=4.0)
    pruner.refresh_alpha()
    before = norms_by_group(pruner)
    pruner.proximal_step(0.05)
    for b, a in zip(before, norms_by_group(pruner)):
        assert torch.all(a < b)


def test_relative_penalty_empties_the_doomed_groups_at_rate_5_not_only_half_of_them():
    # at rate 5 four groups in five are doomed; once the penalty has zeroed half of a matrix's
    # groups their median norm is 0, and a reference taken over all of them stops the penalty
    model, pruner = prepared("bsp", col_blocks=4, target="doomed", relative=True, eps=0.1, rate=5.0)
    for step in range(60):  # a phase whose thresholds add up to lam = 3, refreshed every 5
        if step % 5 == 0:
            pruner.refresh_alpha()
        pruner.proximal_step(0.05)
    for norms, kept in zip(pruner.norms(), pruner.select(0.2)):
        assert int((norms == 0).sum()) == int((~kept).sum())  # every doomed group, no other
    assert pruner.doomed_energy() == 0.0


@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0])
def test_relative_threshold_shrinks_the_median_group_by_the_same_share_at_any_scale(scale):
    model, pruner = prepared("bsp", col_blocks=4, relative=True, eps=0.1, reweighted=True)
    with torch.no_grad():
        for p in pruner.prunables:
            p.module.weight.mul_(scale)
    pruner.refresh_alpha()
    norms = pruner.groups[0].norms().detach()
    median = norms.median()
    g = int(torch.argmin((norms - median).abs()))
    pruner.proximal_step(0.2)
    shrunk = pruner.groups[0].norms().detach()[g] / norms[g]
    # the median group loses threshold / (1 + eps) of its norm, whatever the weights' scale
    assert float(shrunk) == pytest.approx(1 - 0.2 / 1.1, rel=1e-4)


def test_prune_records_the_share_of_squared_norm_it_removed():
    model, pruner = prepared("bsp", col_blocks=4, rate=2.0)
    norms = norms_by_group(pruner)
    pruner.prune(0.5)
    expected = _share(norms, [~k for k in pruner.keep])
    assert pruner.pruned_energy["total"] == pytest.approx(expected, rel=1e-6)
    assert set(pruner.pruned_energy["per_layer"]) == {"0", "1"}
    assert 0 < expected < 0.5  # the weakest half of the groups hold less than half the energy
    # a group that is already zero removes nothing when it is cut
    pruner.prune(0.5)
    assert pruner.pruned_energy["total"] == 0.0


def test_global_floor_keeps_a_share_of_every_matrix():
    model, pruner = prepared("bsp", col_blocks=4, scope="global", rate=5.0, min_density=0.1)
    with torch.no_grad():  # one matrix far weaker than the rest: a plain global ranking empties it
        pruner.prunables[0].module.weight.mul_(1e-3)
    fresh = copy.deepcopy(model)
    pruner.prune(0.2)
    first = pruner.keep[0]
    assert int(first.sum()) == math.ceil(0.1 * len(first))
    plain = BlockPruner(PruneSpec(geometry="bsp", col_blocks=4, scope="global", rate=5.0))
    plain.prepare(fresh)
    plain.prune(0.2)
    assert int(plain.keep[0].sum()) == 0


def test_phase_strength_needs_the_proximal_step():
    with pytest.raises(ValueError, match="lam_per='phase' needs prune.penalty_mode='proximal'"):
        PruneSpec(lam_per="phase", penalty_mode="grad")
    with pytest.raises(ValueError, match="prune.target='some'.*'all', 'doomed'"):
        PruneSpec(target="some")


@pytest.mark.parametrize("geometry", ["bsp", "tiles"])
def test_balanced_prune_keeps_as_many_blocks_in_every_column_block(geometry):
    from blockprune_pl.export.gathered import GatheredLinear

    model, pruner = prepared(geometry, col_blocks=4, block=(4, 8), balance=True, rate=4.0)
    pruner.prune(0.25)
    for g, keep in zip(pruner.groups, pruner.keep):
        per_column = keep.reshape(g.grid).sum(0)
        assert torch.all(per_column == per_column[0]) and int(per_column[0]) > 0
        linear = model.get_submodule(g.name.removesuffix(".weight"))
        gathered = GatheredLinear.from_linear(linear, g.block[1])
        x = torch.randn(5, linear.in_features)
        torch.testing.assert_close(gathered(x), linear(x), atol=1e-5, rtol=1e-5)
        full = linear.in_features // g.block[1]
        if full == g.grid[1]:  # every column block full width: one GEMM, nothing padded
            (blocks, values, _), *rest = gathered._pack()
            assert not rest and values.shape[0] * values.shape[1] * values.shape[2] == int(
                (linear.weight != 0).sum()
            )


def test_unbalanced_prune_differs_where_column_blocks_are_unequal():
    model, pruner = prepared("bsp", col_blocks=4, rate=4.0)
    with torch.no_grad():  # the first column block far stronger: a plain ranking favours it
        for p in pruner.prunables:
            p.module.weight[:, : p.module.in_features // 4] *= 10
    pruner.prune(0.25)
    per_column = pruner.keep[0].reshape(pruner.groups[0].grid).sum(0)
    assert int(per_column[0]) > int(per_column[1])


@pytest.mark.parametrize("option", [dict(balance=True), dict(qk="dims"), dict(qk="heads")])
def test_max_rate_counts_one_group_per_pool_a_prune_ranks_on_its_own(option):
    # balance keeps a group in every column block, qk=dims a dimension in every head: the
    # bound must be the rate a prune to nearly nothing really reaches, not one group per matrix
    from blockprune_pl.pruning import pruning_stats

    model, pruner = prepared("bsp", col_blocks=4, **option)
    highest = pruner.max_rate()
    pruner.prune(1e-9)
    achieved = pruning_stats(model, pruner.prunables, 4)["achieved_rate"]
    assert achieved == pytest.approx(highest)


def test_balance_is_refused_where_it_has_no_meaning():
    with pytest.raises(ValueError, match="prune.balance=true needs"):
        PruneSpec(geometry="neurons", balance=True)
    with pytest.raises(ValueError, match="scope='global'"):
        PruneSpec(geometry="bsp", scope="global", balance=True)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_max_rate_is_the_rate_a_prune_to_it_reaches(scope):
    from blockprune_pl.pruning import pruning_stats

    model, pruner = prepared("bsp", col_blocks=4, scope=scope)
    highest = pruner.max_rate()
    pruner.prune(1e-9)  # as far as a prune goes: what is left is one group per pool
    achieved = pruning_stats(model, pruner.prunables, 4)["achieved_rate"]
    # layer: every matrix keeps one of its equal segments; global: the strongest segment,
    # which may be a larger one than the smallest the bound counts
    assert achieved == pytest.approx(highest) if scope == "layer" else achieved <= highest
    assert sum(int(k.sum()) for k in pruner.keep) == (1 if scope == "global" else 12)
