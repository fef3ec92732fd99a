"""`prune.attn_ratio`: the attention kept that many times as dense as the FFN, whole heads or
segments, and the FFN making up the rate asked."""

import pytest
import torch

from blockprune_pl.pruning import pruning_stats
from tests.unit.test_pruner import assert_whole_heads_of_four, prepared

ATTENTION, FFN = ("q", "k", "v", "attn_out"), ("ffn_in", "ffn_out")


def densities(model, pruner) -> dict[str, float]:
    stats = pruning_stats(model, pruner.prunables, 4)
    return {**stats["density_per_role"], "all": stats["density"]}


def test_heads_bsp_attn_ratio_keeps_whole_heads_and_the_ffn_makes_up_the_rate_asked():
    # tiny BERT layer: attention 4 x 1024 weights, FFN 2 x 2048. Rate 2.5 keeps 3276.8; ratio 3
    # asks the attention for 0.6 (2.4 of 4 heads), so it keeps 2 heads (2048) and the FFN
    # makes up the rest: 1228.8 of 4096, 0.3, instead of the 0.2 the ratio alone would give
    model, pruner = prepared("heads_bsp", rate=2.5, col_blocks=4, attn_ratio=3)
    pruner.prune(0.4)
    got = densities(model, pruner)
    assert [got[r] for r in ATTENTION] == [0.5] * 4
    for role in FFN:
        assert got[role] == pytest.approx(0.3, abs=0.02)
    assert got["all"] == pytest.approx(0.4, abs=0.01)
    for layer in model.bert.encoder.layer:
        assert_whole_heads_of_four(layer, kept=2, biases=False)


def test_attn_ratio_keeps_the_attention_dense_when_the_ratio_asks_for_more():
    # rate 1.6 keeps 5120 of 8192 a layer: ratio 10 would ask the attention for more than all
    # of it, so it stays dense and the FFN keeps 1024 of 4096
    model, pruner = prepared("heads_bsp", rate=1.6, col_blocks=4, attn_ratio=10)
    pruner.prune(1 / 1.6)
    got = densities(model, pruner)
    assert [got[r] for r in ATTENTION] == [1.0] * 4
    assert [got[r] for r in FFN] == [pytest.approx(0.25, abs=0.02)] * 2


def test_attn_ratio_below_one_cuts_the_attention_harder_in_segments():
    # bsp rate 2, ratio 0.5: the FFN at 2/3 and the attention at 1/3 keep half of each layer
    model, pruner = prepared("bsp", rate=2.0, col_blocks=4, attn_ratio=0.5)
    pruner.prune(0.5)
    got = densities(model, pruner)
    for role in ATTENTION:
        assert got[role] == pytest.approx(1 / 3, abs=0.02)
    for role in FFN:
        assert got[role] == pytest.approx(2 / 3, abs=0.02)
    assert got["all"] == pytest.approx(0.5, abs=0.01)


def test_attn_ratio_moves_both_sides_the_same_fraction_of_the_way_on_a_gradual_schedule():
    # rate 2.5 with ratio 3: attention 0.5, FFN 0.3 at the end; halfway (overall 0.7) the
    # attention is at 0.75 and the FFN at 0.65
    _, pruner = prepared("heads_bsp", rate=2.5, col_blocks=4, attn_ratio=3)
    by_kind = {g.kind: d for g, d in zip(pruner.groups, pruner.set_densities(0.7))}
    assert by_kind["heads"] == pytest.approx(0.75)
    assert by_kind["ffn_in"] == by_kind["ffn_out"] == pytest.approx(0.65, abs=0.01)


def test_global_attn_ratio_lets_the_layers_compete_inside_each_side():
    # neurons at rate 2.5 with ratio 3 on the tiny BERT (2 layers, 4 heads, 64 FFN neurons):
    # the attention keeps 2 heads a layer's worth (4 of 8), the FFN 0.3 (38 of 128
    # neurons). Layer 0 made ten times weaker: a global ranking gives its share to layer 1,
    # down to the floor, while each side still keeps its own density
    model, pruner = prepared("neurons", rate=2.5, attn_ratio=3, scope="global", min_density=0.25)
    with torch.no_grad():
        for p in model.bert.encoder.layer[0].parameters():
            p.mul_(0.1)
    pruner.prune(0.4)
    heads = [k for g, k in zip(pruner.groups, pruner.keep) if g.kind == "heads"]
    neurons = [k for g, k in zip(pruner.groups, pruner.keep) if g.kind == "neurons"]
    assert [int(k.sum()) for k in heads] == [1, 3]  # the floor: ceil(0.25 * 4) heads
    assert [int(k.sum()) for k in neurons] == [16, 22]  # ceil(0.25 * 64); 38 in all
    got = densities(model, pruner)
    assert [got[r] for r in ATTENTION] == [0.5] * 4
    assert got["all"] == pytest.approx(0.4, abs=0.01)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(attn_ratio=0), r"prune.attn_ratio=0.0 is not allowed: a finite number > 0"),
        (dict(attn_ratio="dense"), r"prune.attn_ratio='dense' is not allowed: a number"),
        (dict(attn_ratio=2, role_rates={"q": 1}), r"attn_ratio=2 needs no prune.role_rates"),
        (dict(attn_ratio=2, roles=ATTENTION), r"needs attention and FFN roles .*'attn_out'\]"),
        (
            dict(geometry="heads_bsp", rate=4.0, attn_ratio=100),
            r"attn_ratio=100 with prune.rate=4: the FFN would need to keep nothing",
        ),
    ],
)
def test_bad_attn_ratios_are_refused_naming_them(kw, match):
    with pytest.raises(ValueError, match=match):
        prepared(**{"geometry": "bsp", **kw})


def test_a_checkpoint_pruned_with_another_attn_ratio_does_not_resume():
    _, pruner = prepared("heads_bsp", rate=2.5, attn_ratio=3)
    pruner.prune(0.4)
    _, plain = prepared("heads_bsp", rate=2.5)
    with pytest.raises(ValueError, match=r"prune.attn_ratio: checkpoint 3.0 vs run None"):
        plain.load_state_dict(pruner.state_dict())
