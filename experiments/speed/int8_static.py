"""Does static INT8 (activation scales calibrated ahead, no on-the-fly quantization) bring a
compact rate-5 MiniLM to 8x dense fp32 in onnxruntime? Speed at batch 1, sequence 128, and the
accuracy of each graph on the SST-2 validation split.

    python experiments/speed/int8_static.py <run dir of a neurons SST-2 run> --glue DIR
        [--threads 1] [--calibration 64] [--out FILE]

From the run's final weights: the compact fp32 ONNX graph (`--format onnx`), the shipped
`--format int8` graph (dynamic quantization), and two static graphs made with onnxruntime's
`quantize_static` from the fp32 graph, calibrated on `--calibration` SST-2 training sentences
(MinMax): QOperator (QLinearMatMul) and QDQ, MatMul/Gemm weights int8 per channel, activations
uint8. The dense fp32 reference is the same architecture at full width. Timings: torch's
benchmark Timer in one process, one session per graph.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from omegaconf import OmegaConf
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)
from transformers import AutoConfig, AutoModelForSequenceClassification

from blockprune_pl.data.glue import load_split
from blockprune_pl.export import export, save_onnx
from blockprune_pl.export.onnx import QUANTIZED_OPS
from blockprune_pl.export.timing import measure


class Sentences(CalibrationDataReader):
    def __init__(self, feeds: list[dict]):
        self.feeds = iter(feeds)

    def get_next(self):
        return next(self.feeds, None)


def encode(tokenizer, texts, names, max_length=128, pad_to=None) -> dict:
    enc = tokenizer(
        texts,
        truncation=True,
        max_length=max_length,
        padding="max_length" if pad_to else True,
        return_tensors="np",
    )
    return {k: enc[k].astype(np.int64) for k in names}


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def accuracy(s: ort.InferenceSession, tokenizer, texts, labels, batch: int = 64) -> float:
    names = [i.name for i in s.get_inputs()]
    right = 0
    for start in range(0, len(texts), batch):
        feed = encode(tokenizer, texts[start : start + batch], names)
        right += int((s.run(None, feed)[0].argmax(-1) == labels[start : start + batch]).sum())
    return right / len(texts)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--glue", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calibration", type=int, default=64)
    parser.add_argument("--min-run-time", type=float, default=3.0)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    run = Path(args.run)
    tmp = Path(tempfile.mkdtemp())
    fp32 = export(run, tmp / "onnx", "onnx")
    int8 = export(run, tmp / "int8", "int8")
    cfg = OmegaConf.create(json.loads((run / "metrics.json").read_text())["config"])
    cfg.task.data_dir = args.glue
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(fp32)
    names = [i.name for i in session(fp32 / "model.onnx", 1).get_inputs()]
    train = load_split(cfg.task, "train")
    rng = np.random.default_rng(0)
    picks = rng.choice(len(train["label"]), args.calibration, replace=False)
    calibration = [encode(tokenizer, [train["sentence"][int(i)]], names, pad_to=128) for i in picks]
    # onnxruntime's quantization tools leave scratch files in the working folder
    with contextlib.chdir(tmp):
        pre = tmp / "pre.onnx"
        # symbolic shape inference stops incomplete on this graph; ONNX shape inference is enough
        quant_pre_process(str(fp32 / "model.onnx"), str(pre), skip_symbolic_shape=True)
        graphs = {"compact fp32": fp32 / "model.onnx", "compact int8 dynamic": int8 / "model.onnx"}
        for name, fmt in (("QOperator", QuantFormat.QOperator), ("QDQ", QuantFormat.QDQ)):
            out = tmp / f"static_{name}.onnx"
            quantize_static(
                str(pre),
                str(out),
                Sentences(calibration),
                quant_format=fmt,
                op_types_to_quantize=QUANTIZED_OPS,
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8,
            )
            graphs[f"compact int8 static {name}"] = out
    dense = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(fp32))
    save_onnx(dense.eval(), tmp / "dense.onnx")
    graphs = {"dense fp32": tmp / "dense.onnx", **graphs}
    val = load_split(cfg.task, "validation")
    texts, labels = list(val["sentence"]), np.asarray(val["label"])
    feed = encode(tokenizer, [train["sentence"][0]], names, pad_to=128)
    report = {"threads": args.threads, "batch": 1, "seq": 128, "onnxruntime": ort.__version__}
    rows = {}
    for name, path in graphs.items():
        s = session(path, args.threads)
        sub = {k: feed[k] for k in (i.name for i in s.get_inputs())}
        m = measure(lambda s=s, sub=sub: s.run(None, sub), 1, args.min_run_time)
        rows[name] = {"median_ms": 1e3 * m.median, "iqr_ms": 1e3 * m.iqr}
        if name != "dense fp32":
            rows[name]["sst2_val_acc"] = accuracy(s, tokenizer, texts, labels)
        print(name, json.dumps(rows[name]), flush=True)
    base = rows["dense fp32"]["median_ms"]
    for row in rows.values():
        row["speedup_vs_dense_fp32"] = base / row["median_ms"]
    report["graphs"] = rows
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
