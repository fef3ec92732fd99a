"""Where the time of an int8 (or any ONNX) export goes in onnxruntime: total time per operator
type over timed runs at batch 1, sequence 128, one thread, from onnxruntime's own profiler.

    python experiments/speed/int8_profile.py <exported folder with model.onnx> [--runs 50]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    options.enable_profiling = True
    file = str(Path(args.folder) / "model.onnx")
    s = ort.InferenceSession(file, options, providers=["CPUExecutionProvider"])
    ids = np.random.default_rng(0).integers(1000, 20000, (1, 128)).astype(np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids}
    feed = {i.name: feed[i.name] for i in s.get_inputs()}
    for _ in range(args.runs + 5):
        s.run(None, feed)
    events = json.loads(Path(s.end_profiling()).read_text())
    by_op, runs = defaultdict(float), []
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_op[e["args"]["op_name"]] += e["dur"]
        elif e.get("cat") == "Session" and e["name"] == "model_run":
            runs.append(e["dur"])
    total = sum(by_op.values())
    print(f"model_run median {np.median(runs[5:]) / 1e3:.2f} ms over {len(runs) - 5} runs")
    print("| op | share of kernel time |\n|---|---|")
    for op, dur in sorted(by_op.items(), key=lambda kv: -kv[1]):
        if dur / total >= 0.005:
            print(f"| {op} | {100 * dur / total:.1f} % |")


if __name__ == "__main__":
    main()
