import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from blockprune_pl.pruning.groups import (
    BlockGroups,
    block_norms,
    expand_blocks,
    from_blocks,
    grid_shape,
    to_blocks,
)

shapes = st.tuples(st.integers(1, 23), st.integers(1, 23))


@settings(max_examples=60, deadline=None)
@given(shape=shapes, block=shapes)
def test_partition_round_trip_with_ragged_edges(shape, block):
    w = torch.randn(shape)
    blocks = to_blocks(w, block)
    assert blocks.shape[:2] == grid_shape(shape, block)
    assert torch.equal(from_blocks(blocks, shape), w)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, block=shapes)
def test_block_norms_match_a_loop_over_blocks_and_edges_are_kept(shape, block):
    w = torch.randn(shape)
    norms = block_norms(w, block)
    r, c = block
    for i in range(math.ceil(shape[0] / r)):
        for j in range(math.ceil(shape[1] / c)):
            expected = w[i * r : (i + 1) * r, j * c : (j + 1) * c].norm()
            assert torch.allclose(norms[i, j], expected, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, block=shapes)
def test_group_sizes_cover_every_weight_once(shape, block):
    w = torch.nn.Parameter(torch.randn(shape))
    groups = BlockGroups("w", 0, "q", "w", w, block)
    assert int(groups.sizes().sum()) == w.numel()
    ids = torch.arange(len(groups), dtype=torch.float32)
    owner = groups.expand(ids)["w"]
    counts = torch.bincount(owner.flatten().long(), minlength=len(groups))
    assert torch.equal(counts, groups.sizes())


def test_expand_blocks_crops_padding():
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    full = expand_blocks(values, (2, 3), (3, 5))
    assert full.shape == (3, 5)
    assert full[2, 4] == 4.0 and full[0, 0] == 1.0 and full[0, 3] == 2.0
