"""Dense vs exported model latency, side by side in one process:
`python -m blockprune_pl.export.bench <exported folder> [--batch 1,32] [--seq 128]
[--threads 1,2] [--runtime eager|compile|onnxruntime]`.

The timing itself is `timing.py`'s, as for every measurement in this package.

The dense reference is the same architecture at full width (random weights: time does not
depend on values). Prints a Markdown table and writes JSON (median and interquartile spread over
at least `--min-run-time` seconds of timed calls after warm-up, parameter counts, bytes on disk,
FLOP ideal).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from blockprune_pl.errors import ConfigError
from blockprune_pl.export.formats import load_pruned
from blockprune_pl.export.gathered import GatheredLinear
from blockprune_pl.export.onnx import save_onnx
from blockprune_pl.export.timing import latency
from blockprune_pl.io import write_json_atomic


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def encoder_linear_flops(model) -> int:
    """Multiply-adds per token of the encoder Linears (what pruning can shrink): the weights a
    dense Linear holds, the kept block values of a gathered one."""
    total = 0
    for name, module in model.named_modules():
        if "encoder" not in name and "transformer" not in name:
            continue
        if isinstance(module, GatheredLinear):
            total += module.kept_weights()
        elif isinstance(module, torch.nn.Linear):
            total += module.weight.numel()
    return total


def stored_values(model) -> int:
    """Parameters plus packed block values (buffers of gathered Linears)."""
    packed = sum(b.numel() for n, b in model.named_buffers() if ".values_" in n)
    return sum(p.numel() for p in model.parameters()) + packed


RUNTIMES = ("eager", "compile", "onnxruntime")


def onnx_runner(model, n_threads: int, file: Path):
    """A callable with the model's signature that runs `file` in onnxruntime; the model is
    exported to `file` first when it does not exist yet."""
    import onnxruntime as ort

    if not file.is_file():
        save_onnx(model, file)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = n_threads, 1
    session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])

    names = [i.name for i in session.get_inputs()]

    def run(input_ids, attention_mask):
        feed = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        if "token_type_ids" in names:
            feed["token_type_ids"] = torch.zeros_like(input_ids).numpy()
        return session.run(None, feed)

    return run


def bench(
    path: str | Path,
    batches,
    seq: int,
    threads,
    min_run_time: float = 1.0,
    warmup: int = 3,
    runtime: str = "eager",
) -> dict:
    """Dense vs exported latency. `runtime`: torch eager, `torch.compile` (inductor), or
    onnxruntime on the ONNX export of both models (the folder's own `model.onnx` when it has
    one); each compared with the same runtime's dense model."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r} is not available; choose one of {list(RUNTIMES)}")
    path = Path(path)
    if (path / "int8.json").is_file() and runtime != "onnxruntime":
        raise ConfigError(
            f"{path} is an int8 export: its weights are in model.onnx, which runs in "
            "onnxruntime; use --runtime onnxruntime"
        )
    pruned = load_pruned(path, int8=False)  # counted in torch; onnxruntime runs model.onnx
    dense = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(path)).eval()
    dense_flops, pruned_flops = encoder_linear_flops(dense), encoder_linear_flops(pruned)
    rows = []
    scratch = tempfile.TemporaryDirectory()
    for n_threads in threads:
        models = {"dense": dense, "pruned": pruned}
        if runtime == "onnxruntime":
            # the pruned side runs the shipped model.onnx where the folder has one
            files = {"dense": Path(scratch.name) / "dense.onnx", "pruned": path / "model.onnx"}
            if not files["pruned"].is_file():
                files["pruned"] = Path(scratch.name) / "pruned.onnx"
            models = {k: onnx_runner(m, n_threads, files[k]) for k, m in models.items()}
        elif runtime == "compile":
            # one graph per input shape (dynamic=False): the fastest code for each timed shape;
            # compilation happens in the warm-up passes, outside the timing
            models = {k: torch.compile(m, dynamic=False) for k, m in models.items()}
        for batch in batches:
            stats = {}
            for name, model in models.items():
                stats[name] = latency(model, batch, seq, n_threads, min_run_time, warmup)
            rows.append(
                {
                    "threads": n_threads,
                    "batch": batch,
                    "seq": seq,
                    **stats,
                    "speedup": stats["dense"]["median_ms"] / stats["pruned"]["median_ms"],
                }
            )
    scratch.cleanup()
    # an int8 export's weights are its ONNX graph; the safetensors beside it are the fp32 form
    weights = path / ("model.onnx" if (path / "int8.json").is_file() else "model.safetensors")
    return {
        "path": str(path),
        "runtime": runtime,
        "int8": (path / "int8.json").is_file(),
        "params": {
            "dense": sum(p.numel() for p in dense.parameters()),
            "pruned": stored_values(pruned),
        },
        "bytes_on_disk": weights.stat().st_size if weights.is_file() else None,
        "dense_bytes_fp32": 4 * sum(p.numel() for p in dense.parameters()),
        "encoder_linear_flop_ideal": dense_flops / max(1, pruned_flops),
        "results": rows,
    }


def markdown(report: dict) -> str:
    lines = [
        f"ideal (encoder Linear FLOPs) {report['encoder_linear_flop_ideal']:.2f}x; "
        f"params {report['params']['dense']:,} -> {report['params']['pruned']:,}",
        "",
        "| threads | batch | seq | dense ms | pruned ms | speedup |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['threads']} | {r['batch']} | {r['seq']} | "
            f"{r['dense']['median_ms']:.1f} ± {r['dense']['iqr_ms']:.1f} | "
            f"{r['pruned']['median_ms']:.1f} ± {r['pruned']['iqr_ms']:.1f} | "
            f"{r['speedup']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m blockprune_pl.export.bench", description=__doc__
    )
    parser.add_argument("path", help="a folder written by python -m blockprune_pl.export")
    parser.add_argument("--batch", default="1,32", type=_ints)
    parser.add_argument("--seq", default=128, type=int)
    parser.add_argument("--threads", default="1,2", type=_ints)
    parser.add_argument("--min-run-time", default=1.0, type=float, help="seconds per timing")
    parser.add_argument("--runtime", default="eager", choices=RUNTIMES)
    parser.add_argument("--json", help="where to write the JSON (default: <path>/bench.json)")
    args = parser.parse_args(argv)
    report = bench(
        args.path, args.batch, args.seq, args.threads, args.min_run_time, runtime=args.runtime
    )
    write_json_atomic(args.json or Path(args.path) / "bench.json", report)
    print(markdown(report))


if __name__ == "__main__":
    main()
