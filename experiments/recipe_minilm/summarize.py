"""Average drop (points of each task's main metric) per method and rate over the five tasks,
and the per-task table, from a results.csv written by the collector.

    python experiments/recipe_minilm/summarize.py experiments/recipe_minilm/results.csv
    python experiments/recipe_minilm/summarize.py experiments/recipe_minilm/results.csv \
        --against sst2=89.79,mrpc=86.29,rte=57.76,cola=30.91,stsb=85.93

Each drop is against the run's own dense start. `--against` adds a last column: the average
drop against other dense starts (the best reported for each task, in points), since the goals
are judged against dense starts at least as good as the best reported. `--seeds` averages the
runs whose names differ only by a `_seedN` part, task by task (each cell then holds the mean
over the seeds that task has). `--phases` splits each drop by where it happened: the first
phase (its start to `before_prune`: the penalty phase, or the magnitude baseline's teacher-only
phase), the cut (`before_prune` to `after_prune`) and the retrain phase (to the final metric).
"""

import argparse
import re
from collections import defaultdict
from pathlib import Path

from blockprune_pl.collect import read_rows

TASKS = ("sst2", "mrpc", "rte", "cola", "stsb")


def parse_against(spec: str | None) -> dict[str, float]:
    """`sst2=89.79,cola=30.91` -> {task: points}; every task named must be one of TASKS."""
    if not spec:
        return {}
    out = {}
    for part in spec.split(","):
        task, sep, value = part.partition("=")
        if not sep or task not in TASKS:
            raise SystemExit(f"--against: {part!r} must be TASK=POINTS with TASK one of {TASKS}")
        try:
            out[task] = float(value)
        except ValueError:
            raise SystemExit(f"--against: {value!r} for {task} is not a number") from None
    return out


def _average(values: list[float], fmt: str = ".2f") -> str:
    """The mean over the tasks present, naming how many when not all five are."""
    if not values:
        return ""
    tail = "" if len(values) == len(TASKS) else f" ({len(values)} tasks)"
    return f"{sum(values) / len(values):{fmt}}{tail}"


def _mean(rows: list[dict]) -> dict:
    """One row holding the mean value and drop of `rows` (one task, several seeds)."""
    n = len(rows)
    return {"value": sum(r["value"] for r in rows) / n, "drop": sum(r["drop"] for r in rows) / n}


def _groups(rows: list[dict], seeds: bool) -> list:
    """[((name, geometry, rate), {task: [rows]})] by rate, then name: the runs by name with the
    rate stripped and, with `seeds`, the `_seedN` part too."""
    runs = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["method"] == "dense":
            continue
        # the run name without its rate: `heads_onecut_r5_x3` -> `heads_onecut_x3`
        name = re.sub(r"_r[0-9.]+(?=_x|$)", "", r["run"].split("/")[-1])
        if seeds:
            name = re.sub(r"_seed[0-9]+", "", name) + " (seed mean)"
        runs[(name, r["geometry"], r["rate"])][r["task"]].append(r)
    return sorted(runs.items(), key=lambda kv: (kv[0][2], kv[0][0]))


def table(rows: list[dict], against: dict[str, float], seeds: bool = False) -> list[str]:
    """The markdown lines: one row per run name (its rate stripped), geometry and rate."""
    runs = [
        (key, {t: _mean(rs) for t, rs in by_task.items()}) for key, by_task in _groups(rows, seeds)
    ]
    head = "| run | geometry | rate | " + " | ".join(TASKS) + " | average drop |"
    rule = "|---|---|---|" + "---|" * len(TASKS) + "---|"
    if against:
        head += " against " + ", ".join(f"{t} {v:g}" for t, v in against.items()) + " |"
        rule += "---|"
    lines = [head, rule]
    for (name, geometry, rate), by_task in runs:
        present = [t for t in TASKS if t in by_task]
        cells = [
            f"{100 * by_task[t]['value']:.2f} ({100 * by_task[t]['drop']:+.2f})"
            if t in by_task
            else ""
            for t in TASKS
        ]
        line = f"| {name} | {geometry} | {rate:g} | " + " | ".join(cells)
        line += f" | {_average([100 * by_task[t]['drop'] for t in present])} |"
        if against:
            drops = [against[t] - 100 * by_task[t]["value"] for t in present if t in against]
            line += f" {_average(drops)} |"
        lines.append(line)
    return lines


PHASES = ("first phase", "cut", "retrain")


def _phase_moves(r: dict) -> tuple[float, float, float] | None:
    """Points gained in the first phase, at the cut and in the retrain phase (they sum to
    minus the drop); None for a run without a report card."""
    if r["before_prune"] is None or r["after_prune"] is None:
        return None
    before, after = r["before_prune"], r["after_prune"]
    return tuple(100 * m for m in (before - r["dense"], after - before, r["value"] - after))


def phase_table(rows: list[dict], seeds: bool = False) -> list[str]:
    """The markdown lines: per run name and task, the mean points moved by each phase, and
    each phase's mean over the tasks present."""
    head = "| run | rate | " + " | ".join(TASKS) + " | " + " | ".join(PHASES) + " |"
    lines = [head, "|---|---|" + "---|" * (len(TASKS) + len(PHASES))]
    for (name, _, rate), by_task in _groups(rows, seeds):
        per_task = {}
        for t in TASKS:
            moves = [m for m in map(_phase_moves, by_task.get(t, [])) if m is not None]
            if moves:
                per_task[t] = [sum(col) / len(moves) for col in zip(*moves)]
        if not per_task:
            continue
        cells = [
            " / ".join(f"{m:+.2f}" for m in per_task[t]) if t in per_task else "" for t in TASKS
        ]
        moved = " | ".join(_average(list(phase), "+.2f") for phase in zip(*per_task.values()))
        lines.append(f"| {name} | {rate:g} | " + " | ".join(cells) + f" | {moved} |")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", help="a results.csv written by python -m blockprune_pl.collect")
    parser.add_argument("--against", help="TASK=POINTS,...: the dense starts to measure against")
    parser.add_argument("--seeds", action="store_true", help="average the _seedN runs per task")
    parser.add_argument(
        "--phases", action="store_true", help="points moved per phase: first / cut / retrain"
    )
    args = parser.parse_args(argv)
    if args.phases and args.against:
        # the phases split the drop from each run's own start; another start has no phases
        parser.error(f"--against {args.against!r} does not apply to --phases: drop one of them")
    rows = read_rows(Path(args.results))
    if args.phases:
        print("\n".join(phase_table(rows, args.seeds)))
    else:
        print("\n".join(table(rows, parse_against(args.against), args.seeds)))


if __name__ == "__main__":
    main()
