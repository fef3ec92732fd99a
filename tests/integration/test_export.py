import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from blockprune_pl import load_pruned, train
from blockprune_pl.export import export, load_run

PHASES = ["prune.phases.finetune=2", "prune.phases.penalty=2", "prune.phases.retrain=2"]


@pytest.fixture(scope="module")
def runs(glue, tmp_path_factory):
    from tests.conftest import TINY_RUN, compose

    made = {}
    for preset in ("bsp", "tiles", "neurons", "hybrid", "heads_bsp", "irregular"):
        out = tmp_path_factory.mktemp(preset)
        extra = ["prune.block=[8,8]"] if preset == "tiles" else []
        cfg = compose(
            [
                f"task.data_dir={glue}",
                *TINY_RUN,
                f"prune={preset}",
                "prune.rate=3.0",
                *PHASES,
                *extra,
            ],
            out,
        )
        made[preset] = (out, train.run(cfg))
    return made


def logits(model, tokenizer):
    batch = tokenizer(
        ["a fine film", "dull and long , but not bad"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        return model(**batch).logits, batch


@pytest.mark.parametrize("preset", ["bsp", "tiles", "neurons", "hybrid", "heads_bsp", "irregular"])
@pytest.mark.parametrize("fmt", ["hf", "compact", "gathered"])
def test_every_format_gives_the_masked_models_logits(runs, preset, fmt, tmp_path):
    out_dir, results = runs[preset]
    if fmt == "gathered" and preset not in ("bsp", "tiles", "hybrid", "heads_bsp"):
        pytest.skip("gathered is for bsp, tiles, hybrid and heads_bsp runs")
    masked, tokenizer, _ = load_run(out_dir)
    folder = export(out_dir, tmp_path / fmt, fmt)
    loaded = load_pruned(folder)
    expected, _ = logits(masked, tokenizer)
    got, _ = logits(loaded, tokenizer)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)  # fp32 summation order
    if fmt == "hf":
        plain = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        assert torch.equal(logits(plain, tokenizer)[0], got)
    if fmt in ("compact", "gathered") and preset == "hybrid":
        # the FFN lost whole neurons (smaller tensors), the attention keeps its segments
        widths = json.loads((folder / "compact.json").read_text())["layer_widths"]
        assert all(w["ffn"] < masked.config.intermediate_size for w in widths.values())
    if fmt == "gathered" and preset == "hybrid":
        from blockprune_pl.export.gathered import GatheredLinear

        gathered = [n for n, m in loaded.named_modules() if isinstance(m, GatheredLinear)]
        assert gathered and all("attention" in n for n in gathered)
    if fmt in ("compact", "gathered") and preset == "heads_bsp":
        # the attention lost whole heads (smaller tensors); gathered keeps the FFN's full width
        # so that its column blocks stay where the segments were cut
        widths = json.loads((folder / "compact.json").read_text())["layer_widths"]
        heads = masked.config.num_attention_heads
        assert all(w["heads"] < heads for w in widths.values())
        if fmt == "gathered":
            ffn = masked.config.intermediate_size
            assert all(w["ffn"] == ffn for w in widths.values())
    if fmt == "gathered" and preset == "heads_bsp":
        from blockprune_pl.export.gathered import GatheredLinear

        gathered = [n for n, m in loaded.named_modules() if isinstance(m, GatheredLinear)]
        assert gathered and not any("attention" in n for n in gathered)
    if fmt == "compact" and preset == "neurons":
        dense_params = sum(p.numel() for p in masked.parameters())
        assert sum(p.numel() for p in loaded.parameters()) < dense_params


# compact, gathered, and both ways round
@pytest.mark.parametrize("preset", ["neurons", "bsp", "hybrid", "heads_bsp"])
def test_onnx_export_matches_torch(runs, tmp_path, preset):
    ort = pytest.importorskip("onnxruntime")
    out_dir, _ = runs[preset]
    masked, tokenizer, _ = load_run(out_dir)
    folder = export(out_dir, tmp_path / "onnx", "onnx")
    expected, batch = logits(masked, tokenizer)
    session = ort.InferenceSession(str(folder / "model.onnx"))
    got = session.run(None, {i.name: batch[i.name].numpy() for i in session.get_inputs()})[0]
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)
    assert (folder / ("compact.json" if preset == "neurons" else "gathered.json")).is_file()


def test_unknown_format_and_missing_checkpoint_are_named(tmp_path):
    from blockprune_pl.errors import ConfigError

    with pytest.raises(ConfigError, match="no checkpoint at"):
        export(tmp_path, tmp_path / "x", "hf")
    with pytest.raises(ConfigError, match="'sparse' is not available"):
        export(tmp_path, tmp_path / "x", "sparse")


@pytest.mark.parametrize("preset", ["bsp", "tiles"])
def test_gathered_stores_only_kept_blocks_and_keeps_logits(runs, preset, tmp_path):
    from blockprune_pl.export.gathered import GatheredLinear

    out_dir, results = runs[preset]
    masked, tokenizer, _ = load_run(out_dir)
    folder = export(out_dir, tmp_path / "gathered", "gathered")
    loaded = load_pruned(folder)
    torch.testing.assert_close(
        logits(loaded, tokenizer)[0], logits(masked, tokenizer)[0], atol=1e-5, rtol=1e-5
    )
    # every layer forced to the gathered form computes the same, from kept values only
    for name, module in masked.named_modules():
        if isinstance(module, torch.nn.Linear) and "encoder" in name and "LayerNorm" not in name:
            g = GatheredLinear.from_linear(module, 8 if preset == "tiles" else 4)
            x = torch.randn(3, 5, module.in_features)
            torch.testing.assert_close(g(x), module(x), atol=1e-5, rtol=1e-5)
            assert g.kept_weights() == int(torch.count_nonzero(module.weight))
            torch.testing.assert_close(g.densify()(x), module(x), atol=1e-5, rtol=1e-5)
    # only kept blocks on disk: within 1.25x of kept prunable bytes plus everything else
    prunable = results["pruning"]["prunable_params"]
    kept = results["pruning"]["kept_prunable_params"]
    other = results["params"]["total"] - prunable
    header = 64_000  # safetensors JSON header: one entry per tensor, large next to a tiny model
    assert (folder / "model.safetensors").stat().st_size <= 4 * (1.25 * kept + other) + header


@pytest.mark.parametrize("runtime", ["eager", "compile", "onnxruntime"])
def test_bench_runs_on_a_tiny_compact_model(runs, tmp_path, runtime):
    from blockprune_pl.export.bench import bench, markdown

    out_dir, _ = runs["neurons"]
    folder = export(out_dir, tmp_path / "compact", "compact")
    report = bench(
        folder, batches=[1, 2], seq=16, threads=[1], min_run_time=0.01, warmup=1, runtime=runtime
    )
    assert report["runtime"] == runtime
    assert len(report["results"]) == 2 and report["params"]["pruned"] < report["params"]["dense"]
    assert report["encoder_linear_flop_ideal"] > 1.5
    assert all(r["dense"]["median_ms"] > 0 and r["speedup"] > 0 for r in report["results"])
    assert "| 1 | 2 | 16 |" in markdown(report)


def test_bench_onnxruntime_times_the_shipped_model_onnx(runs, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from blockprune_pl.export import bench as bench_module
    from blockprune_pl.export.bench import bench

    out_dir, _ = runs["bsp"]
    folder = export(out_dir, tmp_path / "onnx", "onnx")
    traced, save_onnx = [], bench_module.save_onnx

    def recording(model, file, **kwargs):
        traced.append(file.name)
        save_onnx(model, file, **kwargs)

    monkeypatch.setattr(bench_module, "save_onnx", recording)
    report = bench(
        folder, [1], seq=16, threads=[1], min_run_time=0.01, warmup=1, runtime="onnxruntime"
    )
    assert traced == ["dense.onnx"]  # only the dense reference is traced; model.onnx is read
    assert report["results"][0]["pruned"]["median_ms"] > 0


def test_bench_counts_gathered_flops_and_packed_values(runs, tmp_path):
    from blockprune_pl.export.bench import encoder_linear_flops, stored_values

    out_dir, results = runs["bsp"]
    masked, _, _ = load_run(out_dir)
    gathered = load_pruned(export(out_dir, tmp_path / "g", "gathered"))
    kept = results["pruning"]["kept_prunable_params"]
    assert encoder_linear_flops(gathered) == kept
    assert encoder_linear_flops(masked) == results["pruning"]["prunable_params"]
    packed = stored_values(gathered) - sum(p.numel() for p in gathered.parameters())
    assert packed == kept


def test_a_run_exports_and_benches_at_the_end_when_configured(glue, tmp_path):
    from blockprune_pl.collect import collect
    from tests.conftest import TINY_RUN, compose

    cfg = compose(
        [
            f"task.data_dir={glue}",
            *TINY_RUN,
            "prune=neurons",
            "prune.rate=3.0",
            *PHASES,
            "export.formats=[compact,hf]",
            "export.bench=true",
            "export.batches=[1,2]",
            "export.seq=16",
            "export.min_run_time=0.01",
        ],
        tmp_path,
    )
    results = train.run(cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["exports"] == {f: str(tmp_path / f"export_{f}") for f in ("compact", "hf")}
    assert saved["bench"]["path"] == str(tmp_path / "export_compact")
    assert [r["batch"] for r in saved["bench"]["results"]] == [1, 2]
    assert saved["bench"] == results["bench"]
    masked, tokenizer, _ = load_run(tmp_path)
    compact = load_pruned(tmp_path / "export_compact")
    torch.testing.assert_close(
        logits(compact, tokenizer)[0], logits(masked, tokenizer)[0], atol=1e-5, rtol=1e-5
    )
    (row,), _ = collect(tmp_path)
    assert row["speedup"] == saved["bench"]["results"][0]["speedup"]


def test_an_unknown_export_format_fails_before_training(glue, tmp_path):
    from blockprune_pl.errors import ConfigError
    from tests.conftest import TINY_RUN, compose

    cfg = compose([f"task.data_dir={glue}", *TINY_RUN, "export.formats=[tflite]"], tmp_path)
    with pytest.raises(ConfigError, match="'tflite'.*'hf', 'compact', 'gathered', 'onnx'"):
        train.run(cfg)
    assert not (tmp_path / "checkpoints").exists()


def test_an_unknown_bench_runtime_fails_before_training(glue, tmp_path):
    from blockprune_pl.errors import ConfigError
    from tests.conftest import TINY_RUN, compose

    overrides = [f"task.data_dir={glue}", *TINY_RUN, "export.formats=[hf]", "export.runtime=tvm"]
    cfg = compose(overrides, tmp_path)
    with pytest.raises(ConfigError, match="'tvm'.*'eager', 'compile', 'onnxruntime'"):
        train.run(cfg)
    assert not (tmp_path / "checkpoints").exists()
