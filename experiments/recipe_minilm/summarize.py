"""Average drop (points of each task's main metric) per method and rate over the five tasks,
and the per-task table, from a results.csv written by the collector.

    python experiments/recipe_minilm/summarize.py experiments/recipe_minilm/results.csv
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

from blockprune_pl.collect import read_rows

TASKS = ("sst2", "mrpc", "rte", "cola", "stsb")


def main(path: str) -> None:
    rows = [r for r in read_rows(Path(path)) if r["method"] != "dense"]
    table = defaultdict(dict)
    for r in rows:
        # the run name without its rate: `heads_onecut_r5_x3` -> `heads_onecut_x3`
        name = re.sub(r"_r[0-9.]+(?=_x|$)", "", r["run"].split("/")[-1])
        key = (name, r["geometry"], r["rate"])
        table[key][r["task"]] = (r["value"], r["drop"], r)
    print("| run | geometry | rate | " + " | ".join(TASKS) + " | average drop |")
    print("|---|---|---|" + "---|" * len(TASKS) + "---|")
    for (name, geometry, rate), by_task in sorted(
        table.items(), key=lambda kv: (kv[0][2], kv[0][0])
    ):
        cells = [
            f"{100 * by_task[t][0]:.2f} ({100 * by_task[t][1]:+.2f})" if t in by_task else ""
            for t in TASKS
        ]
        drops = [by_task[t][1] for t in TASKS if t in by_task]
        avg = f"{100 * sum(drops) / len(drops):.2f}" + (
            "" if len(drops) == 5 else f" ({len(drops)} tasks)"
        )
        print(f"| {name} | {geometry} | {rate:g} | " + " | ".join(cells) + f" | {avg} |")


if __name__ == "__main__":
    main(sys.argv[1])
