"""The refit at the cut: least squares on the kept weights, Gram matrices of real tokens only."""

import pytest
import torch
from torch import nn

from blockprune_pl.pruning import BlockPruner, PruneSpec
from blockprune_pl.pruning.refit import GramCollector, refit_rows
from tests.unit.test_pruner import tiny


def _inputs(tokens=400, features=24, seed=0):
    gen = torch.Generator().manual_seed(seed)
    # correlated features, as a layer's inputs are: what lets kept weights stand in for cut ones
    mix = torch.randn(features, features, generator=gen)
    return torch.randn(tokens, features, generator=gen) @ mix


def test_refit_is_the_row_wise_least_squares_fit_on_the_kept_columns():
    x = _inputs()
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(6, 24, generator=gen)
    mask = torch.rand(6, 24, generator=gen) < 0.4
    refit = refit_rows(weight, mask, x.T @ x, damp=0.0)
    assert torch.all(refit[~mask] == 0)
    for r in range(6):
        kept = mask[r].nonzero().squeeze(1)
        expected = torch.linalg.lstsq(x[:, kept].double(), (x @ weight[r]).double()).solution
        assert torch.allclose(refit[r, kept].double(), expected, atol=1e-4)


def test_refit_output_is_closer_to_the_dense_output_than_the_plain_cut():
    x = _inputs()
    weight = torch.randn(16, 24, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(16, 24, dtype=torch.bool)
    mask[:, :8] = True  # one kept 8-wide segment per row
    mask[::2, 8:16] = True  # and a second one in every other row (two kinds of rows)
    cut = weight * mask
    refit = refit_rows(weight, mask, x.T @ x)
    dense_out = x @ weight.T
    plain_err = (x @ cut.T - dense_out).square().sum()
    refit_err = (x @ refit.T - dense_out).square().sum()
    assert refit_err < 0.7 * plain_err


def test_a_fully_kept_row_is_left_as_it_is_and_a_fully_cut_row_stays_zero():
    x = _inputs()
    weight = torch.randn(3, 24, generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(3, 24, dtype=torch.bool)
    mask[0] = True
    mask[2, :5] = True
    refit = refit_rows(weight, mask, x.T @ x, damp=0.0)
    assert torch.allclose(refit[0], weight[0], atol=1e-4)
    assert torch.all(refit[1] == 0)


def test_gram_collector_counts_only_the_tokens_the_mask_marks_real():
    linear = nn.Linear(5, 3)
    x = torch.randn(2, 4, 5)
    token_mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    collector = GramCollector({"lin.weight": linear})
    with collector.collecting():
        collector.token_mask = token_mask
        linear(x)
    real = x.reshape(-1, 5)[token_mask.reshape(-1).bool()].double()
    assert torch.allclose(collector.grams["lin.weight"], real.T @ real)
    linear(x)  # hooks are gone after the block
    assert torch.allclose(collector.grams["lin.weight"], real.T @ real)


@pytest.mark.parametrize("geometry", ["bsp", "neurons", "hybrid"])
def test_a_refit_prune_keeps_the_models_output_closer_to_dense(geometry):
    torch.manual_seed(0)
    ids = torch.randint(0, 99, (32, 12))
    dense = tiny()
    dense.eval()
    with torch.no_grad():
        reference = dense(input_ids=ids, output_hidden_states=True).hidden_states[-1]
    errors = {}
    for refit in (False, True):
        model = tiny()
        model.eval()
        pruner = BlockPruner(PruneSpec(geometry=geometry, rate=3.0, col_blocks=4))
        pruner.prepare(model)
        grams = None
        if refit:
            collector = GramCollector(pruner.calibration_modules())
            with collector.collecting(), torch.no_grad():
                model(input_ids=ids)
            grams = collector.grams
        pruner.prune(1 / 3, grams)
        for param, mask in pruner._mask_pairs():
            assert torch.all(param[~mask] == 0), "a refit weight outside the kept groups"
        with torch.no_grad():
            out = model(input_ids=ids, output_hidden_states=True).hidden_states[-1]
        errors[refit] = float((out - reference).square().mean())
    assert errors[True] < 0.8 * errors[False]
