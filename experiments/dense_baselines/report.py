"""Print the dense-baseline table from results/*.json.

From the repo root: python experiments/dense_baselines/report.py
"""

import json
from pathlib import Path

import pyarrow.parquet as pq

here = Path(__file__).parent
print("| task | train rows | epochs | steps | validation metrics | wall time |")
print("|---|---|---|---|---|---|")
for task in ("sst2", "cola", "mrpc", "rte", "stsb"):
    path = here / "results" / f"{task}.json"
    if not path.is_file():
        print(f"| {task} | not run | | | | |")
        continue
    m = json.loads(path.read_text())
    cfg = m["config"]
    metrics = ", ".join(f"{k.removeprefix('val/')} {100 * v:.2f}" for k, v in m["final"].items())
    split = Path(cfg["task"]["data_dir"]) / task / "train.parquet"
    rows = pq.read_metadata(split).num_rows if split.is_file() else "?"
    print(
        f"| {task} | {rows} | {cfg['prune']['phases']['finetune']} | "
        f"{m['steps']['total']} | {metrics} | {m['wall_time_s'] / 60:.1f} min |"
    )
