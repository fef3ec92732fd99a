import math

import pytest
import torch
from torch import nn

from blockprune_pl.export.gathered import GatheredLinear


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


def test_dense_ranges_switch_to_one_dense_gemm_only_for_those_token_counts():
    linear = block_sparse_linear(48, 24, 8)
    gathered = GatheredLinear.from_linear(linear, 8).densify({1: [(10, 20), (40, math.inf)]})
    calls = []
    gathered._gathered = lambda flat_t: (
        calls.append(flat_t.shape[1]) or (gathered.to_dense() @ flat_t)
    )
    for tokens in (9, 10, 19, 20, 39, 40, 99):
        x = torch.randn(tokens, 48)
        torch.testing.assert_close(gathered(x), linear(x), atol=1e-5, rtol=1e-5)
    assert calls == [9, 20, 39]  # the others ran dense


B1, B2 = math.sqrt(128 * 512), math.sqrt(512 * 4096)  # the log-scale middles


@pytest.mark.parametrize(
    ("winners", "expected"),
    [
        (["gathered", "gathered", "gathered"], []),
        (["dense", "dense", "dense"], [(0, math.inf)]),
        (["gathered", "gathered", "dense"], [(B2, math.inf)]),
        (["gathered", "dense", "dense"], [(B1, math.inf)]),
        (["dense", "gathered", "dense"], [(0, B1), (B2, math.inf)]),
        (["dense", "dense", "gathered"], [(0, B2)]),
    ],
)
def test_dense_ranges_follow_the_measured_winners(monkeypatch, winners, expected):
    from blockprune_pl.export import timing

    linear = block_sparse_linear(48, 24, 8)
    layer = GatheredLinear.from_linear(linear, 8)
    by_tokens = dict(zip((128, 512, 4096), winners))

    def fake_ms(module, x, threads, min_run_time):  # the winner at this count 1 ms, the loser 2 ms
        assert module is linear or module is layer
        name = "dense" if module is linear else "gathered"
        return 1.0 if by_tokens[x.shape[0]] == name else 2.0

    monkeypatch.setattr(timing, "layer_ms", fake_ms)
    ranges, timings = timing.dense_ranges(linear, layer, threads=1)
    assert ranges == expected
    assert set(timings) == {128, 512, 4096}


def test_measure_times_with_the_asked_thread_count_and_restores_the_callers():
    from blockprune_pl.export.timing import measure

    seen = []
    before = torch.get_num_threads()
    m = measure(lambda: seen.append(torch.get_num_threads()), threads=1, min_run_time=0.01)
    assert seen and set(seen) == {1} and len(m.times) >= 1
    assert torch.get_num_threads() == before


def test_blocks_are_grouped_by_kept_rows_when_padding_would_cost_more_than_a_call():
    from blockprune_pl.export.gathered import _group_by_count

    assert _group_by_count([100, 10, 100, 10], call_cost=5) == [[0, 2], [1, 3]]
    assert _group_by_count([100, 10, 100, 10], call_cost=500) == [[0, 1, 2, 3]]
    assert _group_by_count([7], call_cost=5) == [[0]]


@pytest.mark.parametrize("in_features", [64, 70])  # 70: the narrower last block on its own
def test_unbalanced_blocks_run_in_several_groups_and_match_the_dense_layer(in_features):
    torch.manual_seed(0)
    linear = nn.Linear(in_features, 1200)
    with torch.no_grad():
        for j, start in enumerate(range(0, in_features, 8)):
            keep = 1.0 if j % 2 else 0.05  # full blocks next to nearly empty ones
            linear.weight[torch.rand(1200) > keep, start : start + 8] = 0
    gathered = GatheredLinear.from_linear(linear, 8)
    x = torch.randn(2, 9, in_features)
    torch.testing.assert_close(gathered(x), linear(x), atol=1e-5, rtol=1e-5)
    groups = gathered._batched
    assert len(groups) >= 2  # one group would pad to 10x the kept rows
    padded = sum(values.shape[0] * values.shape[1] for _, values, _ in groups)
    kept = sum(int(getattr(gathered, f"rows_{j}").numel()) for j in range(gathered.blocks))
    assert padded < 1.1 * kept


def test_moderately_unbalanced_blocks_stay_one_batched_gemm():
    linear = block_sparse_linear(64, 300, 8, keep=0.5)  # counts differ by a few rows
    gathered = GatheredLinear.from_linear(linear, 8)
    x = torch.randn(5, 64)
    torch.testing.assert_close(gathered(x), linear(x), atol=1e-5, rtol=1e-5)
    assert len(gathered._batched) == 1 and gathered._batched[0][0] is None  # the view, no copy


def test_the_dense_plan_of_the_nearest_thread_count_applies():
    linear = block_sparse_linear(48, 24, 8)
    gathered = GatheredLinear.from_linear(linear, 8).densify({1: [], 4: [(0, math.inf)]})
    threads = torch.get_num_threads()
    try:
        for n, dense in ((1, False), (2, False), (3, True), (8, True)):
            torch.set_num_threads(n)
            assert gathered.runs_dense(16) is dense
    finally:
        torch.set_num_threads(threads)
    assert not GatheredLinear.from_linear(linear, 8).runs_dense(16)  # no plan: gathered
