"""The speed table from results.json (repo root: python experiments/speed/report.py)."""

import json
from pathlib import Path

runs = json.loads((Path(__file__).parent / "results.json").read_text())["runs"]
print("| model | geometry | rate | form | threads | batch | dense ms | pruned ms | speedup | "
      "ideal | realized/ideal | disk MB (dense fp32) |")
print("|" + "---|" * 12)
for run in runs:
    form = "compact" if run["geometry"] == "neurons" else "gathered"
    ideal = run["encoder_linear_flop_ideal"]
    disk = f"{run['bytes_on_disk'] / 2**20:.1f} ({run['dense_bytes_fp32'] / 2**20:.1f})"
    for r in run["results"]:
        print(f"| {run['model']} | {run['geometry']} | {run['rate']:g} | {form} | {r['threads']} | "
              f"{r['batch']} | {r['dense']['median_ms']:.1f} ± {r['dense']['iqr_ms']:.1f} | "
              f"{r['pruned']['median_ms']:.1f} ± {r['pruned']['iqr_ms']:.1f} | "
              f"{r['speedup']:.2f}x | {ideal:.2f}x | {r['speedup'] / ideal:.2f} | {disk} |")
