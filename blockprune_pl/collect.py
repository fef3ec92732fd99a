"""Turn a folder of runs into a paper-style table: `python -m blockprune_pl.collect <dir>`.

Reads every `metrics.json` under the folder and writes `results.md`, `results.csv` and
`metric_vs_rate_<task>.png`: one row per run (model, task, geometry, rate), its main metric, the
drop against the matching dense run (same model and task, rate 1; else the run's own dense-phase
value), achieved rate and parameter counts. Runs without metrics.json are listed as incomplete.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

COLUMNS = [
    "model",
    "task",
    "geometry",
    "rate",
    "method",
    "metric",
    "value",
    "dense",
    "drop",
    "achieved_rate",
    "kept_prunable",
    "prunable",
    "total_params",
    "steps",
    "run",
]


def method_of(m: dict) -> str:
    prune = m["config"]["prune"]
    if m["target_rate"] == 1.0:
        return "dense"
    if not prune["penalty"]:
        return "magnitude"
    return f"{prune['penalty_mode']} lam={prune['lam']:g}"


def collect(root: str | Path) -> tuple[list[dict], list[str]]:
    root = Path(root)
    runs = [(p.parent, json.loads(p.read_text())) for p in sorted(root.rglob("metrics.json"))]
    dense = {(m["model"], m["task"]): m for _, m in runs if m["target_rate"] == 1.0}
    rows = []
    for run_dir, m in runs:
        main = m["main_metric"]
        value = m["final"].get(main)
        ref = dense.get((m["model"], m["task"]))
        base = ref["final"].get(main) if ref else m["dense"].get(main)
        rows.append(
            {
                "model": m["model"],
                "task": m["task"],
                "geometry": m["geometry"],
                "rate": m["target_rate"],
                "method": method_of(m),
                "metric": main,
                "value": value,
                "dense": base,
                "drop": None if value is None or base is None else base - value,
                "achieved_rate": m["pruning"]["achieved_rate"],
                "kept_prunable": m["pruning"]["kept_prunable_params"],
                "prunable": m["pruning"]["prunable_params"],
                "total_params": m["params"]["total"],
                "steps": m["steps"]["total"],
                "run": str(run_dir.relative_to(root)),
            }
        )
    done = {r for r, _ in runs}
    incomplete = sorted(
        str(p.parent.parent.relative_to(root))
        for p in root.rglob(".hydra/config.yaml")
        if p.parent.parent not in done
    )
    rows.sort(key=lambda r: (r["model"], r["task"], r["geometry"], r["method"], r["rate"]))
    return rows, incomplete


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"
    return "" if v is None else str(v)


def write(rows: list[dict], incomplete: list[str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    shown = [c for c in COLUMNS if c not in ("prunable", "run")]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in shown) + " |" for r in rows]
    if incomplete:
        lines += [
            "",
            "Incomplete or failed runs (no metrics.json):",
            *[f"- {d}" for d in incomplete],
        ]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    _plots(rows, out)


def _plots(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    for task in sorted({r["task"] for r in rows}):
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        mine = [r for r in rows if r["task"] == task and r["value"] is not None]
        for method in sorted({r["method"] for r in mine if r["method"] != "dense"}):
            pts = sorted((r["rate"], r["value"]) for r in mine if r["method"] == method)
            ax.plot(*zip(*pts), marker="o", label=method)
        for r in mine:
            if r["method"] == "dense":
                ax.axhline(r["value"], color="gray", linestyle="--", label="dense")
        ax.set_xlabel("compression rate")
        ax.set_ylabel(mine[0]["metric"] if mine else "")
        ax.set_title(task)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"metric_vs_rate_{task}.png", dpi=90)
        plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m blockprune_pl.collect", description=__doc__)
    parser.add_argument("root", help="a multirun folder (or any folder of runs)")
    parser.add_argument("--out", help="where to write results (default: the folder itself)")
    args = parser.parse_args(argv)
    rows, incomplete = collect(args.root)
    out = Path(args.out or args.root)
    write(rows, incomplete, out)
    print(f"{len(rows)} runs, {len(incomplete)} incomplete -> {out / 'results.md'}")


if __name__ == "__main__":
    main()
