"""Every encoder family prunes from its own module names (ModernBERT with its fused q/k/v and
gated FFN): tiny random configs built here (no download), pruned with each geometry to the exact
rate, one masked training step, and exported with the logits of the masked model. Decoders,
ALBERT and fused projections of another shape are refused with the reason."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from blockprune_pl.errors import ConfigError
from blockprune_pl.pruning import BlockPruner, PruneSpec, pruning_stats
from blockprune_pl.pruning.discover import LayoutError
from blockprune_pl.pruning.layouts import find_prunable, layout_for

BASE = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
)
FAMILIES = {
    "bert": BASE,
    "roberta": BASE,
    "xlm-roberta": BASE,
    "camembert": BASE,
    "electra": {**BASE, "embedding_size": 32},
    "distilbert": dict(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=64),
    "deberta-v2": {**BASE, "pooler_hidden_size": 32},
    "mpnet": BASE,
}


# a wide initialisation: with HF's default (std 0.02) a tiny model's attention barely moves the
# logits, and an export that splits the kept rows into the wrong heads would still match
WIDE = dict(initializer_range=0.3)


def tiny(family: str, **extra):
    torch.manual_seed(0)
    config = AutoConfig.for_model(family, num_labels=2, **FAMILIES[family], **WIDE, **extra)
    return AutoModelForSequenceClassification.from_config(config).eval()


MODERNBERT = dict(
    BASE, pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2
)


def tiny_modernbert():
    torch.manual_seed(0)
    config = AutoConfig.for_model("modernbert", num_labels=2, **MODERNBERT, **WIDE)
    return AutoModelForSequenceClassification.from_config(config).eval()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_roles_are_found_for_every_layer(family):
    prunables = find_prunable(tiny(family), layout_for(tiny(family)))
    assert [(p.layer, p.role) for p in prunables] == [
        (layer, role)
        for layer in range(2)
        for role in ("q", "k", "v", "attn_out", "ffn_in", "ffn_out")
    ]
    shapes = {p.role: tuple(p.module.weight.shape) for p in prunables}
    assert shapes["ffn_in"] == (64, 32) and shapes["ffn_out"] == (32, 64)


@pytest.mark.parametrize("family", [*FAMILIES, "modernbert"])
@pytest.mark.parametrize("geometry", ["bsp", "tiles", "neurons", "heads_bsp"])
def test_prune_step_and_export_keep_the_masked_logits(family, geometry, tmp_path):
    model = tiny_modernbert() if family == "modernbert" else tiny(family)
    spec = PruneSpec(geometry=geometry, rate=2.0, block=(8, 8), col_blocks=4)
    pruner = BlockPruner(spec).prepare(model)
    pruner.prune(spec.density)
    stats = pruning_stats(model, pruner.prunables, 4)
    assert stats["achieved_rate"] == pytest.approx(2.0, rel=0.05)
    # heads_bsp's gathered form: its heads removed as in compact, its FFN segments gathered
    forms = ["hf", "gathered" if geometry != "neurons" else "compact"]
    step_and_export(model, pruner, geometry, forms, tmp_path)


def step_and_export(model, pruner, geometry, forms, tmp_path):
    """One masked training step (the pruned weights stay exactly zero), then each export form
    loads with the masked model's logits."""
    from omegaconf import OmegaConf

    from blockprune_pl.export import export_model, load_pruned

    ids = torch.randint(5, 99, (3, 9))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    loss = model(input_ids=ids, labels=torch.tensor([0, 1, 1])).loss
    loss.backward()
    pruner.mask_grads()
    optimizer.step()
    pruner.apply_masks()
    model.eval()
    for name, mask in pruner.masks().items():
        assert torch.all(model.get_parameter(name)[~mask] == 0), name
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    prune_cfg = OmegaConf.create({"geometry": geometry, "col_blocks": 4, "block": [8, 8]})
    for fmt in forms:
        folder = export_model(model, None, prune_cfg, tmp_path / fmt, fmt, measure=False)
        with torch.no_grad():
            got = load_pruned(folder)(input_ids=ids).logits
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("family", "kwargs", "message"),
    [
        ("gpt2", dict(vocab_size=99, n_embd=32, n_layer=2, n_head=4), "is a decoder"),
        ("llama", {**BASE, "num_key_value_heads": 4}, "is a decoder"),
        ("albert", {**BASE, "embedding_size": 16}, "shares one set of weights"),
    ],
)
def test_families_that_cannot_be_pruned_this_way_are_refused(family, kwargs, message):
    config = AutoConfig.for_model(family, num_labels=2, **kwargs)
    model = AutoModelForSequenceClassification.from_config(config)
    with pytest.raises(LayoutError, match=message):
        layout_for(model)


def test_a_fused_projection_that_is_not_three_thirds_is_named_and_refused():
    model = tiny("bert")
    layer = model.bert.encoder.layer[0].attention.self
    layer.Wqkv = torch.nn.Linear(32, 95)
    model.config.model_type = "fused-bert"
    with pytest.raises(LayoutError, match=r"attention\.self\.Wqkv is a fused projection"):
        layout_for(model)


def test_modernbert_fused_qkv_and_gated_ffn_are_found_as_such():
    prunables = find_prunable(tiny_modernbert(), layout_for(tiny_modernbert()))
    assert [(p.layer, p.role) for p in prunables] == [
        (layer, role) for layer in range(2) for role in ("q+k+v", "attn_out", "ffn_in", "ffn_out")
    ]
    shapes = {p.role: tuple(p.module.weight.shape) for p in prunables}
    assert shapes["q+k+v"] == (96, 32) and shapes["ffn_in"] == (128, 32)


@pytest.mark.parametrize("geometry", ["bsp", "tiles", "irregular"])
def test_modernbert_prunes_without_straddling_and_exports_the_masked_logits(geometry, tmp_path):
    model = tiny_modernbert()
    spec = PruneSpec(geometry=geometry, rate=2.0, block=(8, 8), col_blocks=4)
    pruner = BlockPruner(spec).prepare(model)
    pruner.prune(spec.density)
    stats = pruning_stats(model, pruner.prunables, 4)
    assert stats["achieved_rate"] == pytest.approx(2.0, rel=0.05)
    # every group lies inside one third of Wqkv and one half of Wi (rows never straddle)
    for g in pruner.groups:
        parts = 3 if g.role == "q+k+v" else 2 if g.role == "ffn_in" else 1
        assert (g.shape[0] // parts) % g.block[0] == 0, g.label
    step_and_export(
        model,
        pruner,
        geometry,
        ["hf"] + (["gathered"] if geometry != "irregular" else []),
        tmp_path,
    )


def test_modernbert_tiles_that_would_straddle_q_k_v_are_refused():
    with pytest.raises(ConfigError, match=r"q\+k\+v.*straddle"):
        BlockPruner(PruneSpec(geometry="tiles", rate=2.0, block=(12, 8))).prepare(tiny_modernbert())


@pytest.mark.parametrize("geometry", ["neurons", "hybrid"])
def test_modernbert_heads_and_gated_neurons_are_cut_whole_and_compact(geometry, tmp_path):
    from omegaconf import OmegaConf

    from blockprune_pl.export import export_model, load_pruned

    model = tiny_modernbert()
    spec = PruneSpec(geometry=geometry, rate=2.0, col_blocks=4)
    pruner = BlockPruner(spec).prepare(model)
    pruner.prune(spec.density)
    assert pruning_stats(model, pruner.prunables, 4)["achieved_rate"] == pytest.approx(2.0, 0.1)
    attn, mlp = model.model.layers[0].attn, model.model.layers[0].mlp
    # a neuron: its input row, its gate row and its output column go together
    alive = (mlp.Wi.weight[:64] != 0).any(1)
    assert 0 < int(alive.sum()) < 64
    assert torch.equal((mlp.Wi.weight[64:] != 0).any(1), alive)
    assert torch.equal((mlp.Wo.weight != 0).any(0), alive)
    if geometry == "neurons":  # a head: its rows in each third of Wqkv and its Wo columns
        heads = (attn.Wqkv.weight.reshape(3, 4, 8, 32) != 0).any(-1).any(-1)
        assert torch.equal(heads[0], heads[1]) and torch.equal(heads[0], heads[2])
        assert torch.equal((attn.Wo.weight.reshape(32, 4, 8) != 0).any(0).any(-1), heads[0])
        assert 0 < int(heads[0].sum()) < 4
    ids = torch.randint(5, 99, (3, 9))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    prune_cfg = OmegaConf.create({"geometry": geometry, "col_blocks": 4, "block": [8, 8]})
    dense_params = sum(p.numel() for p in model.parameters())
    for fmt in ("compact", "gathered") if geometry == "hybrid" else ("compact",):
        folder = export_model(model, None, prune_cfg, tmp_path / fmt, fmt, measure=False)
        loaded = load_pruned(folder)
        with torch.no_grad():
            torch.testing.assert_close(loaded(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)
        assert sum(p.numel() for p in loaded.parameters()) < dense_params


@pytest.mark.integration  # 18 ONNX traces: longer than the unit tier's budget
@pytest.mark.parametrize("family", [*FAMILIES, "modernbert"])
@pytest.mark.parametrize("geometry", ["bsp", "neurons"])
def test_onnx_export_of_every_family_matches_torch_in_a_stock_session(family, geometry, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    import numpy as np
    from omegaconf import OmegaConf

    from blockprune_pl.export import export_model

    model = tiny_modernbert() if family == "modernbert" else tiny(family)
    spec = PruneSpec(geometry=geometry, rate=2.0, col_blocks=4)
    BlockPruner(spec).prepare(model).prune(spec.density)
    ids = torch.randint(5, 99, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0  # padding, and a length the graph was not traced at
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits.numpy()
    prune_cfg = OmegaConf.create({"geometry": geometry, "col_blocks": 4, "block": [8, 8]})
    folder = export_model(model, None, prune_cfg, tmp_path / "onnx", "onnx", measure=False)
    session = ort.InferenceSession(str(folder / "model.onnx"))
    feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    if "token_type_ids" in [i.name for i in session.get_inputs()]:
        feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
    got = session.run(None, feed)[0]
    assert np.ptp(expected) > 1e-5  # the rows differ: a constant graph would not pass
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("share_att_key", [True, False])
def test_deberta_relative_attention_compacts_with_its_own_head_count(share_att_key, tmp_path):
    from omegaconf import OmegaConf

    from blockprune_pl.export import export_model, load_pruned

    # DeBERTa-v3's attention: relative positions, projected by q/k (shared) or by
    # pos_key_proj / pos_query_proj, each reshaped by a stored head count
    model = tiny(
        "deberta-v2",
        relative_attention=True,
        pos_att_type=["p2c", "c2p"],
        share_att_key=share_att_key,
        position_buckets=16,
        max_relative_positions=32,
    )
    prunables = find_prunable(model, layout_for(model))
    assert not any("pos_" in p.name for p in prunables)  # position projections stay dense
    BlockPruner(PruneSpec(geometry="neurons", rate=2.0)).prepare(model).prune(0.5)
    ids = torch.randint(5, 99, (3, 9))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    prune_cfg = OmegaConf.create({"geometry": "neurons", "col_blocks": 8, "block": [8, 8]})
    folder = export_model(model, None, prune_cfg, tmp_path / "c", "compact", measure=False)
    attention = load_pruned(folder).deberta.encoder.layer[0].attention.self
    assert attention.num_attention_heads == 2 and attention.query_proj.out_features == 16
    with torch.no_grad():
        got = load_pruned(folder)(input_ids=ids).logits
    assert float(expected.std()) > 0.1
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_exporting_leaves_the_callers_model_as_it_was(tmp_path):
    from omegaconf import OmegaConf

    from blockprune_pl.export import export_model, load_pruned

    model = tiny("bert")
    BlockPruner(PruneSpec(geometry="neurons", rate=2.0)).prepare(model).prune(0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prune_cfg = OmegaConf.create({"geometry": "neurons", "col_blocks": 8, "block": [8, 8]})
    ids = torch.randint(5, 99, (2, 7))
    for fmt in ("compact", "onnx", "compact"):  # the same model, again and again
        folder = export_model(model, None, prune_cfg, tmp_path / fmt, fmt, measure=False)
        assert model.state_dict().keys() == before.keys()
        assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    with torch.no_grad():
        torch.testing.assert_close(
            load_pruned(folder)(input_ids=ids).logits, model(input_ids=ids).logits
        )
