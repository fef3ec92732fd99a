import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification

from blockprune_pl.pruning import BlockPruner, PruneSpec, pruning_stats
from blockprune_pl.pruning.layouts import find_prunable, layout_for

FAMILIES = {
    "bert": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64),
    "roberta": dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    ),
    "distilbert": dict(dim=32, n_layers=2, n_heads=4, hidden_dim=64),
}


def tiny(family="bert", seed=0):
    torch.manual_seed(seed)
    cfg = AutoConfig.for_model(family, vocab_size=99, num_labels=2, **FAMILIES[family])
    return AutoModelForSequenceClassification.from_config(cfg)


def prepared(geometry="bsp", family="bert", **kw):
    model = tiny(family)
    spec = PruneSpec(geometry=geometry, **{"rate": 5.0, "block": (8, 8), **kw})
    return model, BlockPruner(spec).prepare(model)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_layout_finds_six_roles_per_layer(family):
    found = find_prunable(tiny(family), layout_for(family))
    assert len(found) == 12
    assert [p.role for p in found[:6]] == ["q", "k", "v", "attn_out", "ffn_in", "ffn_out"]


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(KeyError, match="known families: .*bert.*distilbert"):
        layout_for("gpt2")


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize(
    "geometry", ["bsp", "tiles", "irregular", "neurons", "hybrid", "heads_bsp"]
)
@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("rate", [2.0, 5.0])
def test_achieved_rate_is_within_one_group_of_the_target(family, geometry, scope, rate):
    model, pruner = prepared(geometry, family, scope=scope, rate=rate)
    pruner.prune(1.0 / rate)
    stats = pruning_stats(model, pruner.prunables, 4)
    kept, total = stats["kept_prunable_params"], stats["prunable_params"]
    # one group of the pool the rate was enforced on: a matrix/coupled set per layer, or all
    pools = [pruner.groups] if scope == "global" else [[g] for g in pruner.groups]
    for pool in pools:
        pool_total = sum(int(g.sizes().sum()) for g in pool)
        pool_kept = sum(int(m.sum()) for g in pool for m in [_kept_weights(g)])
        largest = max(int(g.sizes().max()) for g in pool)
        assert abs(pool_kept - pool_total / rate) <= largest / 2 + 1e-6
    assert abs(kept - total / rate) <= sum(int(g.sizes().max()) for g in pruner.groups) / 2
    assert stats["achieved_rate"] == pytest.approx(total / kept)


def _kept_weights(groups):
    return torch.stack(
        [(p != 0).sum() for name, p in groups.params.items() if name.endswith("weight")]
    )


def assert_whole_heads_of_four(layer, kept: int, biases: bool) -> None:
    """`kept` of the layer's 4 heads (8 rows each) are kept whole in q, k, v (and their
    biases) and in the columns of attn_out; the others are cut whole."""
    q, out = layer.attention.self.query, layer.attention.output.dense
    heads_alive = (q.weight.reshape(4, 8, 32) != 0).any(-1).any(-1)
    assert int(heads_alive.sum()) == kept
    for h in range(4):
        rows = slice(8 * h, 8 * h + 8)
        alive = bool(heads_alive[h])
        for lin in (q, layer.attention.self.key, layer.attention.self.value):
            assert bool((lin.weight[rows] != 0).all()) == alive
            if biases:
                assert bool((lin.bias[rows] != 0).all()) == alive
        assert bool((out.weight[:, rows] != 0).all()) == alive


def test_neurons_remove_whole_heads_and_neurons_with_biases():
    model, pruner = prepared("neurons", rate=4.0)
    with torch.no_grad():  # HF initialises biases to zero; make them visible
        for p in model.parameters():
            if p.dim() == 1:
                p.uniform_(0.1, 1.0)
    pruner.prune(0.25)
    layer = model.bert.encoder.layer[0]
    assert_whole_heads_of_four(layer, kept=1, biases=True)
    ffn_in, ffn_out = layer.intermediate.dense, layer.output.dense
    alive = (ffn_in.weight != 0).all(1)
    assert int(alive.sum()) == 16
    assert torch.equal((ffn_out.weight != 0).all(0), alive)
    assert torch.equal(ffn_in.bias != 0, alive)
    stats = pruning_stats(model, pruner.prunables, 4)
    assert stats["kept_heads"] == 2 and stats["kept_neurons"] == 32


def test_hybrid_cuts_attention_into_row_segments_and_the_ffn_into_whole_neurons():
    model, pruner = prepared("hybrid", rate=4.0, col_blocks=4)
    pruner.prune(0.25)
    layer = model.bert.encoder.layer[0]
    for lin in (layer.attention.self.query, layer.attention.output.dense):
        segments = (lin.weight.reshape(32, 4, 8) != 0).any(-1)  # (rows, column blocks)
        # each 8-wide segment is kept or cut whole, and rows are cut in some blocks only
        assert torch.equal(segments, (lin.weight.reshape(32, 4, 8) != 0).all(-1))
        assert int(segments.sum()) == 32
        assert not torch.equal(segments.all(1), segments.any(1))
    ffn_in, ffn_out = layer.intermediate.dense, layer.output.dense
    alive = (ffn_in.weight != 0).all(1)
    assert int(alive.sum()) == 16
    assert torch.equal((ffn_out.weight != 0).all(0), alive)
    assert not bool((ffn_in.weight[~alive] != 0).any())
    assert [g.kind for g in pruner.groups[:4]] == ["q", "k", "v", "attn_out"]
    assert pruner.groups[-1].kind == "neurons"


def test_heads_bsp_cuts_whole_heads_and_the_ffn_into_row_segments():
    model, pruner = prepared("heads_bsp", rate=4.0, col_blocks=4)
    pruner.prune(0.25)
    layer = model.bert.encoder.layer[0]
    assert_whole_heads_of_four(layer, kept=1, biases=False)
    ffn_in, ffn_out = layer.intermediate.dense, layer.output.dense
    for lin, width in ((ffn_in, 8), (ffn_out, 16)):
        rows = lin.weight.shape[0]
        blocks = lin.weight.reshape(rows, 4, width) != 0
        # each segment is kept or cut whole, and rows are cut in some blocks only
        assert torch.equal(blocks.any(-1), blocks.all(-1))
        assert int(blocks.any(-1).sum()) == rows  # a quarter of rows x 4 blocks
        assert not torch.equal(blocks.any(-1).all(1), blocks.any(-1).any(1))
    assert [g.kind for g in pruner.groups[:2]] == ["heads", "heads"]
    assert [g.kind for g in pruner.groups[-2:]] == ["ffn_in", "ffn_out"]


def test_heads_bsp_role_rates_keep_whole_heads_and_the_ffn_makes_up_the_rate():
    # tiny BERT layer: attention 4 x 1024 weights, FFN 2 x 2048. Rate 2.5 keeps 3276.8; the
    # attention at rate 2 keeps 2 of 4 heads (2048), so the FFN keeps 1228.8 of 4096: 0.3
    model, pruner = prepared(
        "heads_bsp", rate=2.5, col_blocks=4, role_rates={r: 2 for r in ("q", "k", "v", "attn_out")}
    )
    pruner.prune(0.4)
    stats = pruning_stats(model, pruner.prunables, 4)
    for role in ("q", "k", "v", "attn_out"):
        assert stats["density_per_role"][role] == 0.5
    for role in ("ffn_in", "ffn_out"):
        assert stats["density_per_role"][role] == pytest.approx(0.3, abs=0.02)
    assert stats["density"] == pytest.approx(0.4, abs=0.01)
    for layer in model.bert.encoder.layer:
        assert_whole_heads_of_four(layer, kept=2, biases=False)


def written_penalty(model, pruner, lam):
    """lam * sum_g alpha_g ||W_g|| by explicit loops over bsp blocks."""
    total = 0.0
    for p, alpha in zip(pruner.prunables, pruner.alpha):
        w = p.module.weight
        width = -(-w.shape[1] // 8)
        g = 0
        for i in range(w.shape[0]):
            for j in range(0, w.shape[1], width):
                total = total + alpha[g] * w[i, j : j + width].norm()
                g += 1
    return lam * total


def test_alpha_and_penalty_gradient_match_the_written_formula():
    model, pruner = prepared("bsp", lam=0.3, eps=1e-3)
    pruner.refresh_alpha()
    w = pruner.prunables[0].module.weight
    assert torch.allclose(pruner.alpha[0][0], 1 / (w[0, :4].norm() + 1e-3))
    expected = written_penalty(model, pruner, 0.3)
    params = [p.module.weight for p in pruner.prunables]
    grads = torch.autograd.grad(expected, params)
    value = pruner.add_penalty_grad()
    assert value == pytest.approx(float(expected), rel=1e-5)
    for p, g in zip(params, grads):
        assert torch.allclose(p.grad, g, atol=1e-7)


def test_plain_group_lasso_has_alpha_one_and_zero_groups_have_zero_gradient():
    model, pruner = prepared("bsp", reweighted=False)
    w = pruner.prunables[0].module.weight
    with torch.no_grad():
        w[0].zero_()
    pruner.refresh_alpha()
    assert all(torch.equal(a, torch.ones_like(a)) for a in pruner.alpha)
    pruner.add_penalty_grad()
    assert torch.isfinite(w.grad).all() and torch.equal(w.grad[0], torch.zeros_like(w.grad[0]))


def test_proximal_step_shrinks_groups_and_zeroes_small_ones():
    model, pruner = prepared("bsp", lam=1.0)
    pruner.refresh_alpha()
    before = [n.clone() for n in pruner.norms()]
    pruner.proximal_step(threshold=1e-4)
    after = pruner.norms()
    assert all((a <= b + 1e-7).all() for a, b in zip(after, before))
    pruner.proximal_step(threshold=1e6)
    assert all(torch.count_nonzero(n) == 0 for n in pruner.norms())


@pytest.mark.parametrize(
    "geometry", ["bsp", "tiles", "neurons", "hybrid", "heads_bsp", "irregular"]
)
def test_pruned_weights_stay_exactly_zero_through_200_adamw_steps(geometry):
    model, pruner = prepared(geometry)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    x = torch.randint(0, 99, (4, 8))
    y = torch.tensor([0, 1, 0, 1])

    def step():
        opt.zero_grad()
        model(input_ids=x, labels=y).loss.backward()
        pruner.mask_grads()
        opt.step()
        pruner.apply_masks()

    for _ in range(20):  # build up momentum before pruning
        step()
    pruner.prune(0.2)
    pruner.mask_optimizer_state(opt)
    masks = pruner.masks()
    for _ in range(200):
        step()
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        assert torch.count_nonzero(params[name][~mask]) == 0
        assert torch.count_nonzero(params[name][mask]) > 0


def test_gradual_pruning_is_monotone():
    model, pruner = prepared("bsp")
    pruner.prune(0.6)
    first = [k.clone() for k in pruner.keep]
    pruner.prune(0.3)
    assert all(not (k & ~f).any() for k, f in zip(pruner.keep, first))


def test_state_dict_round_trip_and_identity_check():
    model, pruner = prepared("tiles")
    pruner.refresh_alpha()
    pruner.prune(0.2)
    state = pruner.state_dict()
    _, other = prepared("tiles")
    other.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(pruner.alpha, other.alpha))
    assert all(torch.equal(a, b) for a, b in zip(pruner.keep, other.keep))
    assert other.masks().keys() == pruner.masks().keys()
    _, wrong = prepared("tiles", rate=2.0)
    with pytest.raises(ValueError, match="prune.rate: checkpoint 5.0 vs run 2.0"):
        wrong.load_state_dict(state)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(rate=0.5), "prune.rate=0.5"),
        (dict(rate=float("nan")), "prune.rate=nan"),
        (dict(rate=float("inf")), "prune.rate=inf"),
        (dict(block=(0, 4)), r"prune.block=\[0, 4\]"),
        (dict(geometry="rows"), "prune.geometry='rows'.*bsp"),
        (dict(scope="model"), "prune.scope='model'"),
        (dict(roles=("q", "mlp")), "prune.roles"),
    ],
)
def test_spec_rejects_bad_values_naming_them(kw, match):
    with pytest.raises(ValueError, match=match):
        PruneSpec(**kw)


def test_block_larger_than_a_matrix_is_refused():
    with pytest.raises(ValueError, match=r"prune.block=\[64, 64\] does not fit .*\(32, 32\)"):
        prepared("tiles", block=(64, 64))


@pytest.mark.parametrize("geometry", ["bsp", "neurons"])
def test_alpha_keep_and_masks_move_with_the_module_that_holds_model_and_pruner(geometry):
    # the LightningModule holds both; with no second device here, "meta" stands in for a GPU
    model, pruner = prepared(geometry, rate=4.0)
    pruner.prune(0.25)
    holder = nn.ModuleDict({"model": model, "pruner": pruner}).to("meta")
    buffers = dict(pruner.named_buffers())  # alpha_<i>, keep_<i>, mask_<j>
    assert len(buffers) == 2 * len(pruner.groups) + len(list(pruner._mask_pairs()))
    assert {t.device.type for t in buffers.values()} == {"meta"}
    assert {p.device.type for p in holder.parameters()} == {"meta"}


def test_masks_are_rebuilt_from_the_saved_keep_flags(tmp_path):
    model, pruner = prepared("bsp", rate=4.0)
    pruner.prune(0.25)
    state = pruner.state_dict()
    assert not any(k.startswith("mask_") for k in state)  # derived, not saved
    torch.save(state, tmp_path / "pruner.pt")
    _, other = prepared("bsp", rate=4.0)
    other.load_state_dict(torch.load(tmp_path / "pruner.pt", weights_only=True))
    assert other.is_pruned and other.pruned_energy == pruner.pruned_energy
    mine, theirs = pruner.masks(), other.masks()
    assert mine.keys() == theirs.keys() and len(mine) > 0
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("geometry", ["bsp", "neurons"])
def test_masks_follow_the_model_to_the_gpu(geometry):
    model, pruner = prepared(geometry, rate=4.0)
    pruner.prune(0.25)
    nn.ModuleDict({"model": model, "pruner": pruner}).cuda()
    state = [*pruner.alpha, *pruner.keep, *pruner.masks().values()]
    assert {t.device.type for t in state} == {"cuda"}
    for param, mask in pruner._mask_pairs():
        param.data.normal_()
        pruner.apply_masks()
        assert bool((param[~mask] == 0).all())
    assert float(pruner.penalty()) > 0


def test_role_rates_keep_the_named_roles_and_the_others_make_up_the_rate():
    # tiny BERT layer: q, k, v, attn_out 32x32 each, ffn_in and ffn_out 2048 weights each;
    # rate 2 with q and k dense leaves the other 6144 weights 2048 of the 4096 kept: 1/3
    model, pruner = prepared("bsp", rate=2.0, role_rates={"q": 1, "k": 1})
    pruner.prune(0.5)
    stats = pruning_stats(model, pruner.prunables, 4)
    assert stats["density_per_role"]["q"] == stats["density_per_role"]["k"] == 1.0
    for role in ("v", "attn_out", "ffn_in", "ffn_out"):
        assert stats["density_per_role"][role] == pytest.approx(1 / 3, abs=0.05)
    assert stats["density"] == pytest.approx(0.5, abs=0.02)


def test_role_rates_move_every_role_the_same_fraction_of_the_way_on_a_gradual_schedule():
    # rate 4 with q and k at rate 2: the other roles end at 1/6. Halfway (overall 0.625), q and k
    # are at 0.75 and the others at 7/12, which together keep 0.625
    model, pruner = prepared("bsp", rate=4.0, role_rates={"q": 2, "k": 2})
    by_role = {g.role: d for g, d in zip(pruner.groups, pruner.set_densities(0.625))}
    assert by_role["q"] == by_role["k"] == pytest.approx(0.75)
    assert by_role["ffn_in"] == by_role["v"] == pytest.approx(7 / 12)
    pruner.prune(0.625)
    stats = pruning_stats(model, pruner.prunables, 4)["density_per_role"]
    assert stats["q"] == pytest.approx(0.75, abs=0.04)
    assert stats["ffn_out"] == pytest.approx(7 / 12, abs=0.04)
    pruner.prune(0.25)
    stats = pruning_stats(model, pruner.prunables, 4)["density_per_role"]
    assert stats["k"] == pytest.approx(0.5, abs=0.04)
    assert stats["attn_out"] == pytest.approx(1 / 6, abs=0.04)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(role_rates={"mlp": 1}), r"'mlp' is not a pruned role.*'q'"),
        (
            dict(roles=("v",), role_rates={"q": 1}),
            r"'q' is not a pruned role; prune.roles: \['v'\]",
        ),
        (dict(role_rates={"q": 0.5}), r"prune.role_rates.q=0.5 .* >= 1"),
        (dict(role_rates={"q": "dense"}), r"prune.role_rates.q='dense' .* a number"),
        (dict(role_rates=["q"]), r"prune.role_rates=\['q'\] .* a mapping of role to rate"),
        (dict(role_rates={"q": 1}, scope="global"), r"needs prune.scope='layer'.*'global'"),
    ],
)
def test_spec_rejects_bad_role_rates_naming_them(kw, match):
    with pytest.raises(ValueError, match=match):
        PruneSpec(**kw)


@pytest.mark.parametrize(
    "geometry, kw, match",
    [
        (
            "bsp",
            dict(rate=5.0, role_rates={"q": 1, "k": 1, "v": 1, "attn_out": 1}),
            r"the other roles \['ffn_in', 'ffn_out'\] would need to keep nothing or less",
        ),
        (
            "bsp",
            dict(rate=1.0, role_rates={"q": 2}),
            r"prune.rate=1: the other roles .* would need rate 0\.",
        ),
        (
            "bsp",
            dict(role_rates={r: 2 for r in ("q", "k", "v", "attn_out", "ffn_in", "ffn_out")}),
            "names every pruned role; leave at least one out",
        ),
        ("neurons", dict(role_rates={"q": 1}), r"layer.0.heads prunes the roles \['q', 'k'"),
    ],
)
def test_role_rates_the_other_roles_cannot_make_up_are_refused(geometry, kw, match):
    with pytest.raises(ValueError, match=match):
        prepared(geometry, **kw)


def test_a_checkpoint_pruned_with_other_role_rates_does_not_resume():
    _, pruner = prepared("bsp", rate=2.0, role_rates={"q": 1})
    pruner.prune(0.5)
    _, plain = prepared("bsp", rate=2.0)
    with pytest.raises(ValueError, match=r"prune.role_rates: checkpoint \{'q': 1.0\} vs run None"):
        plain.load_state_dict(pruner.state_dict())


@pytest.mark.parametrize("geometry", ["bsp", "hybrid", "irregular"])
def test_qk_dims_cut_the_same_rows_of_q_and_k_and_as_many_in_every_head(geometry):
    model, pruner = prepared(geometry, rate=2.0, qk="dims")
    assert [g.kind for g in pruner.groups if g.layer == 0][0] == "qk_dims"
    pruner.prune(0.5)
    for layer in model.bert.encoder.layer:
        attention = layer.attention.self
        q_alive = (attention.query.weight != 0).any(1)
        k_alive = (attention.key.weight != 0).any(1)
        assert torch.equal(q_alive, k_alive)
        # 4 heads of 8 dimensions: each keeps 4
        assert q_alive.reshape(4, 8).sum(1).tolist() == [4, 4, 4, 4]
        assert torch.count_nonzero(attention.query.bias[~q_alive]) == 0
        assert torch.count_nonzero(attention.key.bias[~k_alive]) == 0
        # a kept dimension keeps its whole row
        assert torch.count_nonzero(attention.query.weight[q_alive]) == q_alive.sum() * 32
        # v is still cut in the geometry's own groups, so some of its rows are partly kept
        per_row = (attention.value.weight != 0).sum(1)
        assert ((per_row > 0) & (per_row < 32)).any()


def test_qk_dims_reach_the_exact_rate_with_heads_keeping_as_many_give_or_take_one():
    # 4 heads of 8 dimensions at density 0.2: 6.4 of 32 per layer; every head keeping 1.6
    # rounded would miss the rate, so 6 are kept, two heads keeping one more than the others
    model, pruner = prepared("bsp", rate=5.0, qk="dims")
    qk = next(i for i, g in enumerate(pruner.groups) if g.kind == "qk_dims")
    scores = pruner.groups[qk].norms().detach().reshape(4, 8)
    pruner.prune(0.2)
    per_head = pruner.keep[qk].reshape(4, 8).sum(1)
    assert int(per_head.sum()) == 6 and sorted(per_head.tolist()) == [1, 1, 2, 2]
    # the heads that keep a second dimension are those whose second best scores highest
    second = scores.sort(1, descending=True).values[:, 1]
    assert set(torch.nonzero(per_head == 2).flatten().tolist()) == set(
        second.topk(2).indices.tolist()
    )
    # a further cut never brings a dimension back, and every head keeps one
    kept = pruner.keep[qk].clone()
    pruner.prune(0.01)
    assert not (pruner.keep[qk] & ~kept).any()
    assert pruner.keep[qk].reshape(4, 8).sum(1).tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize("geometry", ["bsp", "hybrid"])
def test_qk_heads_cut_whole_heads_of_q_and_k_together_and_leave_v_to_its_geometry(geometry):
    model, pruner = prepared(geometry, rate=2.0, qk="heads")
    qk = next(i for i, g in enumerate(pruner.groups) if g.layer == 0 and g.kind == "qk_heads")
    scores = pruner.groups[qk].norms().detach()
    pruner.prune(0.5)
    for layer in model.bert.encoder.layer:
        attention = layer.attention.self
        q_alive = (attention.query.weight != 0).any(1).reshape(4, 8)
        k_alive = (attention.key.weight != 0).any(1).reshape(4, 8)
        assert torch.equal(q_alive, k_alive)
        # 4 heads of 8 dimensions at density 0.5: two heads keep all 8 rows, two keep none
        assert sorted(q_alive.sum(1).tolist()) == [0, 0, 8, 8]
        assert torch.count_nonzero(attention.query.bias.reshape(4, 8)[~q_alive]) == 0
        per_row = (attention.value.weight != 0).sum(1)
        assert ((per_row > 0) & (per_row < 32)).any()
    # layer 0 keeps the two heads whose q and k rows together have the largest norm
    kept = (model.bert.encoder.layer[0].attention.self.query.weight != 0).any(1).reshape(4, 8)
    assert set(torch.nonzero(kept.any(1)).flatten().tolist()) == set(
        scores.topk(2).indices.tolist()
    )


@pytest.mark.parametrize("qk, doomed_count", [("dims", 16), ("heads", 2)])
def test_qk_coupled_penalty_shrinks_only_the_groups_the_cut_would_remove(qk, doomed_count):
    # 4 heads of 8 dimensions at density 0.5: 16 dimensions or 2 heads per layer are doomed
    _, pruner = prepared("bsp", rate=2.0, qk=qk, target="doomed", penalty_mode="proximal")
    i = next(i for i, g in enumerate(pruner.groups) if g.kind == f"qk_{qk}")
    before = pruner.groups[i].norms().detach().clone()
    doomed = ~pruner.select(0.5)[i]
    pruner.refresh_alpha()
    pruner.proximal_step(0.05)
    after = pruner.groups[i].norms().detach()
    assert int(doomed.sum()) == doomed_count
    assert (after[doomed] < before[doomed]).all()
    assert torch.equal(after[~doomed], before[~doomed])


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(geometry="neurons", qk="dims"), r"prune.qk='dims' needs .*'neurons'"),
        (dict(scope="global", qk="dims"), r"prune.qk='dims' needs .*scope='global'"),
        (dict(roles=("q", "v"), qk="dims"), r"prune.roles=\['q', 'v'\] must hold both"),
        (dict(geometry="neurons", qk="heads"), r"prune.qk='heads' needs .*'neurons'"),
        (dict(geometry="heads_bsp", qk="dims"), r"prune.qk='dims' needs .*'heads_bsp'"),
        (
            dict(qk="rows"),
            r"prune.qk='rows' is not allowed; choose one of \['same', 'dims', 'heads'\]",
        ),
    ],
)
def test_spec_rejects_bad_qk_cuts_naming_them(kw, match):
    with pytest.raises(ValueError, match=match):
        PruneSpec(**kw)
