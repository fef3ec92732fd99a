import pytest
import torch
from torch import nn

from blockprune_pl.pruning.gathered import GatheredLinear


def block_sparse_linear(in_features, out_features, width, keep=0.3, seed=0):
    torch.manual_seed(seed)
    linear = nn.Linear(in_features, out_features)
    with torch.no_grad():
        for start in range(0, in_features, width):
            dropped = torch.rand(out_features) > keep
            linear.weight[dropped, start : start + width] = 0
    return linear


@pytest.mark.parametrize("in_features", [48, 50])  # 50: a narrower last column block
@pytest.mark.parametrize("lead", [(7,), (2, 5)])
def test_gathered_linear_matches_the_dense_layer(in_features, lead):
    linear = block_sparse_linear(in_features, 24, width=8)
    gathered = GatheredLinear.from_linear(linear, 8)
    x = torch.randn(*lead, in_features)
    torch.testing.assert_close(gathered(x), linear(x), atol=1e-5, rtol=1e-5)
    assert gathered(x).is_contiguous()
    assert gathered.kept_weights() == int((linear.weight != 0).sum())


def test_new_weights_are_used_after_a_forward_already_packed_the_old_ones():
    first = block_sparse_linear(48, 24, 8)
    second = block_sparse_linear(48, 24, 8)  # the same zeros, other values
    with torch.no_grad():
        second.weight.mul_(2.0)
    gathered = GatheredLinear.from_linear(first, 8)
    x = torch.randn(3, 48)
    torch.testing.assert_close(gathered(x), first(x), atol=1e-5, rtol=1e-5)
    gathered.load_state_dict(GatheredLinear.from_linear(second, 8).state_dict())
    torch.testing.assert_close(gathered(x), second(x), atol=1e-5, rtol=1e-5)
