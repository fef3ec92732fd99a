"""Print the SST-2 tuning table from outputs/bsp_tune.

From the repo root: python experiments/bsp_minilm/tune_report.py
"""

import json
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/bsp_tune")
print("| variant | penalty | lam | schedule | acc before prune | final acc | wall time |")
print("|---|---|---|---|---|---|---|")
for path in sorted(root.glob("*/metrics.json")):
    m = json.loads(path.read_text())
    if "final" not in m or m["target_rate"] == 1.0:
        continue
    p = m["config"]["prune"]
    mode = p["penalty_mode"] if p["penalty"] else "none"
    before = m["before_prune"].get("val/acc")
    print(
        f"| {path.parent.name} | {mode} | {p['lam'] if p['penalty'] else '-'} | {p['schedule']} | "
        f"{'n/a' if before is None else f'{100 * before:.1f}'} | "
        f"{100 * m['final']['val/acc']:.1f} | {m['wall_time_s'] / 60:.1f} min |"
    )
