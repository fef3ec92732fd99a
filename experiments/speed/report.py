"""The speed table from results JSON files (repo root: python experiments/speed/report.py
[experiments/speed/results.json ...]; default: every results*.json beside this file)."""

import json
import sys
from pathlib import Path

files = [Path(f) for f in sys.argv[1:]] or sorted(Path(__file__).parent.glob("results*.json"))
print(
    "| model | geometry | rate | form | runtime | threads | batch | dense ms | pruned ms | "
    "speedup | ideal | realized/ideal | disk MB (dense fp32) | disk / kept bytes |"
)
print("|" + "---|" * 14)
for file in files:
    for run in json.loads(file.read_text())["runs"]:
        form = "compact" if run["geometry"] == "neurons" else "gathered"
        if run.get("balance"):
            form += ", balanced"
        if run.get("rate") == 1:
            form = "dense"
        if run.get("int8"):
            form += " int8"
        ideal = run["encoder_linear_flop_ideal"]
        disk = f"{run['bytes_on_disk'] / 2**20:.1f} ({run['dense_bytes_fp32'] / 2**20:.1f})"
        # stored values = kept prunable + non-prunable: the disk goal is <= 1.25x on the first
        kept_bytes = 4 * run["params"]["pruned"]
        ratio = f"{run['bytes_on_disk'] / kept_bytes:.3f}"
        if run.get("int8"):  # its weights are in model.onnx; the safetensors are the fp32 form
            disk, ratio = "(onnx)", ""
        for r in run["results"]:
            print(
                f"| {run['model']} | {run['geometry']} | {run['rate']:g} | {form} | "
                f"{run.get('runtime', 'eager')} | {r['threads']} | {r['batch']} | "
                f"{r['dense']['median_ms']:.1f} ± {r['dense']['iqr_ms']:.1f} | "
                f"{r['pruned']['median_ms']:.1f} ± {r['pruned']['iqr_ms']:.1f} | "
                f"{r['speedup']:.2f}x | {ideal:.2f}x | {r['speedup'] / ideal:.2f} | {disk} | "
                f"{ratio} |"
            )
