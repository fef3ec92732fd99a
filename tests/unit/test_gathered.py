import math

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


def test_token_chunks_give_the_same_result_as_one_pass():
    linear = block_sparse_linear(48, 24, 8)
    gathered = GatheredLinear.from_linear(linear, 8)
    x = torch.randn(3, 11, 48)  # 33 tokens: chunks of 8, the last one short
    gathered.chunk = 8
    torch.testing.assert_close(gathered(x), linear(x), atol=1e-5, rtol=1e-5)


def test_dense_from_switches_to_one_dense_gemm_only_from_that_many_tokens():
    linear = block_sparse_linear(48, 24, 8)
    gathered = GatheredLinear.from_linear(linear, 8).densify(from_tokens=10)
    calls = []
    gathered._gathered = lambda flat_t: (
        calls.append(flat_t.shape[1]) or (gathered.to_dense() @ flat_t)
    )
    for tokens in (9, 10, 40):
        x = torch.randn(tokens, 48)
        torch.testing.assert_close(gathered(x), linear(x), atol=1e-5, rtol=1e-5)
    assert calls == [9]  # 10 and 40 tokens ran dense


@pytest.mark.parametrize(
    ("winners", "expected"),
    [
        (["gathered", "gathered", "gathered"], math.inf),
        (["dense", "dense", "dense"], 0),
        (["gathered", "gathered", "dense"], math.sqrt(512 * 4096)),
        (["gathered", "dense", "dense"], math.sqrt(128 * 512)),
        (["dense", "gathered", "dense"], math.sqrt(512 * 4096)),  # only the trailing run counts
        (["dense", "dense", "gathered"], math.inf),
    ],
)
def test_dense_from_threshold_follows_the_measured_winners(monkeypatch, winners, expected):
    from blockprune_pl.pruning import gathered as module

    linear = block_sparse_linear(48, 24, 8)
    layer = GatheredLinear.from_linear(linear, 8)
    by_tokens = dict(zip((128, 512, 4096), winners))

    def fake_ms(m, x, repeats):  # the winner at this token count is 1 ms, the loser 2 ms
        name = "gathered" if m is layer else "dense"
        return 1.0 if by_tokens[x.shape[0]] == name else 2.0

    monkeypatch.setattr(module, "median_ms", fake_ms)
    threshold, timings = module.dense_from(linear, layer)
    assert threshold == expected
    assert set(timings) == {128, 512, 4096}
