"""The GPU table: dense vs compact MiniLM (and BERT-base) in fp32, fp16 and bf16, and 2:4
semi-structured sparse weights where the GPU supports them, one process, one GPU.

Each model is pruned one-shot with `neurons` (heads and FFN neurons removed: `compact`, a
smaller dense model) at each rate; rate 1 is the dense model. `2:4` rows keep the two largest
of every four weights in each encoder Linear (half the weights, NVIDIA's sparse tensor cores)
on top of the form named: `dense 2:4` is the dense model so sparsified, `compact 2:4` the
compact one. Timing: `torch.utils.benchmark` (it synchronises CUDA), median and IQR, forward
passes under inference_mode, sequence 128.
Usage (repo root): python experiments/speed/gpu.py --out $OUT/gpu.json
Dry run on a CPU: python experiments/speed/gpu.py --device cpu --models minilm --rates 5
    --dtypes fp32 --batches 1 --min-run-time 0.1 --out /tmp/gpu.json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from run import model_for  # noqa: E402

from blockprune_pl.export.compact import compact  # noqa: E402
from blockprune_pl.export.timing import latency  # noqa: E402
from blockprune_pl.pruning import BlockPruner, PruneSpec  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def compact_model(name: str, rate: float) -> nn.Module:
    model = model_for(name)
    if rate > 1:
        spec = PruneSpec(geometry="neurons", rate=rate)
        BlockPruner(spec).prepare(model).prune(spec.density)
        compact(model)
    return model.eval()


def two_four(model: nn.Module) -> str | None:
    """Encoder Linears to 2:4 semi-structured sparse weights in place; None, or why not."""
    from torch.sparse import to_sparse_semi_structured

    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or "encoder" not in name:
            continue
        w = module.weight.detach()
        if w.shape[0] % 64 or w.shape[1] % 64:  # the kernels' tile sizes
            return f"{name}: shape {tuple(w.shape)} is not a multiple of 64"
        groups = w.reshape(-1, 4)
        keep = torch.zeros_like(groups, dtype=torch.bool)
        keep.scatter_(1, groups.abs().topk(2, dim=1).indices, True)
        masked = (groups * keep).reshape(w.shape)
        try:
            module.weight = nn.Parameter(to_sparse_semi_structured(masked), requires_grad=False)
        except (RuntimeError, ValueError) as err:
            return f"{type(err).__name__}: {err}"
    return None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", default="minilm,bert-base")
    parser.add_argument("--rates", default="1,2,5,10")
    parser.add_argument("--dtypes", default="fp32,fp16,bf16")
    parser.add_argument("--batches", default="1,32,128")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--min-run-time", type=float, default=0.5)
    parser.add_argument("--no-2to4", action="store_true")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    for name in args.models.split(","):
        for rate in (float(r) for r in args.rates.split(",")):
            base = compact_model(name, rate)
            for dtype_name in args.dtypes.split(","):
                forms = {"compact" if rate > 1 else "dense": base}
                if not args.no_2to4 and dtype_name != "fp32" and device.type == "cuda":
                    sparse = copy.deepcopy(base).to(device, DTYPES[dtype_name])
                    why = two_four(sparse)
                    forms["compact 2:4" if rate > 1 else "dense 2:4"] = why or sparse
                for form, model in forms.items():
                    for batch in batches:
                        row = {"model": name, "rate": rate, "dtype": dtype_name, "form": form}
                        row["batch"], row["seq"] = batch, args.seq
                        if isinstance(model, str):
                            rows.append({**row, "skipped": model})
                            continue
                        model = model.to(device, DTYPES[dtype_name]).eval()
                        try:  # a 2:4 kernel may refuse a shape only when it runs
                            timed = latency(model, batch, args.seq, 1, args.min_run_time, 3, device)
                        except (RuntimeError, NotImplementedError) as err:
                            rows.append({**row, "skipped": f"{type(err).__name__}: {err}"})
                            continue
                        rows.append({**row, **timed})
                        print(json.dumps(rows[-1]), flush=True)
    dense = {
        (r["model"], r["dtype"], r["batch"]): r["median_ms"]
        for r in rows
        if r["form"] == "dense" and "median_ms" in r
    }
    for r in rows:
        ref = dense.get((r["model"], "fp32", r["batch"]))
        if ref and "median_ms" in r:
            r["speedup_vs_dense_fp32"] = ref / r["median_ms"]
    on_gpu = device.type == "cuda"
    report = {
        "device": torch.cuda.get_device_name(device) if on_gpu else platform.processor(),
        "torch": torch.__version__,
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
