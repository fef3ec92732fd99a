"""Turn folders of runs into a paper-style table: `python -m blockprune_pl.collect <dir>...`.

Reads every `metrics.json` under the folders and writes `results.md`, `results.csv` and
`metric_vs_rate_<task>.png`: one row per run (model, task, geometry, rate), its main metric, the
drop against the matching dense run (same model and task, rate 1; else the run's own dense-phase
value), achieved rate, parameter counts and, where the run benchmarked its export, the speedup.
Runs without metrics.json are listed as incomplete. `--merge` keeps the rows already in the
output's `results.csv` (a run collected now replaces the row of the same name), so a table can
grow by a seed or a task at a time after the earlier run folders are gone. `--heatmap RUN` also
draws that run's density per layer over its optimizer steps (`density_heatmap.png`, from its
CSV log).
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
from pathlib import Path

from blockprune_pl.errors import ConfigError
from blockprune_pl.pruning.layouts import ROLES
from blockprune_pl.record import RunRecord

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
    "before_prune",
    "after_prune",
    "pruned_energy",
    "achieved_rate",
    "kept_prunable",
    "prunable",
    "total_params",
    "steps",
    "speedup",
    "commit",
    "run",
]
# how `read_rows` types a results.csv cell back (the rest stay strings; an empty number is None)
REALS = {"rate", "value", "dense", "drop", "before_prune", "after_prune", "pruned_energy",
         "achieved_rate", "speedup"}  # fmt: skip
COUNTS = {"kept_prunable", "prunable", "total_params", "steps"}


def method_of(m: RunRecord) -> str:
    prune = m.config["prune"]
    if m.target_rate == 1.0:
        return "dense"
    if not (m.steps or {}).get("penalty", 1) and prune.get("schedule", "one_shot") == "one_shot":
        method = "one-shot magnitude"  # no penalty phase: the penalty never acted
    elif not prune["penalty"]:
        method = "magnitude"
    else:
        method = f"{prune['penalty_mode']} lam={prune['lam']:g}"
        if prune.get("lam_per", "step") == "phase":
            method += "/phase"
        if prune.get("target", "all") == "doomed":
            method += " doomed"
    if prune.get("col_blocks", 8) != 8 and m.geometry in ("bsp", "hybrid", "heads_bsp"):
        method += f" col_blocks={prune['col_blocks']}"  # the segment width differs
    roles = prune.get("roles")
    if roles and set(roles) != set(ROLES):
        method += " roles=" + ",".join(roles)  # some matrices stayed dense
    if prune.get("role_rates"):  # some roles kept more (or less) than the rate says
        method += " role_rates=" + ",".join(f"{r}:{v:g}" for r, v in prune["role_rates"].items())
    if prune.get("attn_ratio", 1.0) != 1.0:  # the attention kept denser (or not) than the FFN
        method += f" attn_ratio={prune['attn_ratio']:g}"
    if prune.get("qk", "same") != "same":
        method += f" qk={prune['qk']}"  # q and k cut in their own structure
    if prune.get("score", "norm") != "norm":
        method += f" score={prune['score']}"  # ranked by what a removal costs the loss
    if prune.get("balance"):
        method += " balanced"
    if prune.get("scope", "layer") == "global":
        method += " global"
        if prune.get("min_density"):  # each matrix or coupled set keeps at least this share
            method += f" floor={prune['min_density']:g}"
    if prune.get("schedule", "one_shot") == "cubic":
        method += " cubic"
    if prune.get("refit"):
        method += " refit"
    if prune.get("freeze_embeddings"):
        method += " frozen-emb"
    for phase in ("penalty", "retrain"):  # a phase trained at another lr than optim.lr
        scale = prune.get(f"{phase}_lr_scale", 1.0)
        if scale != 1.0 and (m.steps or {}).get(phase, 1):
            method += f" {phase}-lr x{scale:g}"
    distill = m.distill or {}
    if distill.get("enabled"):
        method += " +kd" + ("+hidden" if distill.get("hidden_weight") else "")
        if distill.get("attention_weight"):
            method += "+attn"
        if distill.get("augment"):
            method += f"+aug{distill['augment']:g}"
    return method


def _speedup(m: RunRecord) -> float | None:
    """The bench's speedup at batch 1 (the first thread count), when the run recorded one."""
    rows = (m.bench or {}).get("results") or []
    at_b1 = [r for r in rows if r.get("batch") == 1] or rows
    return at_b1[0].get("speedup") if at_b1 else None


def _commit(m: RunRecord) -> str:
    """The short commit the run's code came from ('+' when the package or its configs differed)."""
    commit = (m.code or {}).get("commit")
    if not commit:
        return ""
    return commit[:7] + ("+" if m.code.get("dirty") else "")


def _selected(name: str, only: list[str]) -> bool:
    return not only or any(fnmatch.fnmatch(name, pattern) for pattern in only)


def _name(run: Path, root: Path) -> str:
    """A run's path inside the folder it was found in; a folder given as a run is its own name."""
    rel = run.relative_to(root)
    return root.name if rel == Path(".") else str(rel)


def _runs(roots: list[Path], only: list[str]) -> list[tuple[Path, str, RunRecord]]:
    runs = []
    for root in roots:
        for p in sorted(root.rglob("metrics.json")):
            name = _name(p.parent, root)
            if not _selected(name, only):
                continue
            runs.append((p.parent, name, RunRecord.read(p)))
    return runs


def collect(
    roots: str | Path | list, only: list[str] | None = None
) -> tuple[list[dict], list[str]]:
    """Rows for every run under `roots` (a folder or several) whose path relative to its folder
    matches one of the `only` glob patterns (all runs when none are given)."""
    roots = [Path(r) for r in (roots if isinstance(roots, list) else [roots])]
    runs = _runs(roots, only or [])
    dense = {(m.model, m.task): m for _, _, m in runs if m.target_rate == 1.0}
    rows = []
    for _, name, m in runs:
        value = m.metric("final")
        ref = dense.get((m.model, m.task))
        base = ref.metric("final") if ref else m.metric("dense")
        rows.append(
            {
                "model": m.model,
                "task": m.task,
                "geometry": m.geometry,
                "rate": m.target_rate,
                "method": method_of(m),
                "metric": m.main_metric,
                "value": value,
                "dense": base,
                "drop": None if value is None or base is None else base - value,
                "before_prune": m.metric("before_prune"),
                "after_prune": m.metric("after_prune"),
                "pruned_energy": (m.pruning.get("pruned_energy") or {}).get("total"),
                "achieved_rate": m.pruning["achieved_rate"],
                "kept_prunable": m.pruning["kept_prunable_params"],
                "prunable": m.pruning["prunable_params"],
                "total_params": m.params["total"],
                "steps": m.steps["total"],
                "speedup": _speedup(m),
                "commit": _commit(m),
                "run": name,
            }
        )
    done = {r for r, _, _ in runs}
    incomplete = sorted(
        _name(p.parent.parent, root)
        for root in roots
        for p in root.rglob(".hydra/config.yaml")
        if p.parent.parent not in done and _selected(_name(p.parent.parent, root), only or [])
    )
    rows.sort(key=_sort_key)
    return rows, incomplete


def _sort_key(row: dict) -> tuple:
    return row["model"], row["task"], row["geometry"], row["method"], row["rate"]


def read_rows(path: Path) -> list[dict]:
    """The rows of a results.csv written by `write`, typed as `collect` returns them."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"{path} is not a results table of this collector: no {missing}")
        rows = list(reader)
    for row in rows:
        for col in REALS | COUNTS:
            cell = row[col]
            row[col] = None if cell == "" else float(cell) if col in REALS else int(cell)
    return rows


def merge(kept: list[dict], new: list[dict]) -> list[dict]:
    """`kept` with the rows of `new` added; a new row replaces a kept row of the same run name.
    The kept rows' drops stay those measured against their dense runs when they were collected."""
    replaced = {r["run"] for r in new}
    rows = [r for r in kept if r["run"] not in replaced] + new
    return sorted(rows, key=_sort_key)


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
        lines = sorted({(r["geometry"], r["method"]) for r in mine if r["method"] != "dense"})
        for geometry, method in lines:
            pts = sorted(
                (r["rate"], r["value"])
                for r in mine
                if (r["geometry"], r["method"]) == (geometry, method)
            )
            ax.plot(*zip(*pts), marker="o", label=f"{geometry} {method}")
        for value in sorted({r["value"] for r in mine if r["method"] == "dense"}):
            ax.axhline(value, color="gray", linestyle="--", label="dense")
        ax.set_xlabel("compression rate")
        ax.set_ylabel(mine[0]["metric"] if mine else "")
        ax.set_title(task)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"metric_vs_rate_{task}.png", dpi=90)
        plt.close(fig)


def density_heatmap(run: str | Path, out: Path) -> Path:
    """`density_heatmap.png`: the density of every layer (rows) at each logged optimizer step
    (columns) of one run, read from its CSV log (`logger=csv`, the default)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    logs = sorted(Path(run).glob("csv/version_*/metrics.csv"))
    if not logs:
        raise SystemExit(
            f"--heatmap {run}: no csv/version_*/metrics.csv there; the heatmap reads the CSV "
            "log of a run made with logger=csv (the default)"
        )
    with open(logs[-1]) as f:
        logged = [r for r in csv.DictReader(f) if r.get("density/layer_0")]
    if not logged:
        raise SystemExit(f"--heatmap {run}: its CSV log holds no density/layer_* values")
    layers = sorted(
        (k for k in logged[0] if k.startswith("density/layer_")),
        key=lambda k: int(k.rsplit("_", 1)[1]),
    )
    grid = [[float(r[k]) for r in logged] for k in layers]
    steps = [int(float(r["step"])) for r in logged]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(layers) + 1.5))
    image = ax.imshow(grid, aspect="auto", vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
    ticks = range(0, len(steps), max(1, len(steps) // 8))
    ax.set_xticks(list(ticks), [str(steps[i]) for i in ticks])
    ax.set_yticks(range(len(layers)), [k.rsplit("_", 1)[1] for k in layers])
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("layer")
    ax.set_title(f"density per layer: {Path(run).name}"[:80], fontsize=8)
    fig.colorbar(image, ax=ax, label="kept fraction")
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "density_heatmap.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m blockprune_pl.collect", description=__doc__)
    parser.add_argument("roots", nargs="+", help="multirun folders (or any folders of runs)")
    parser.add_argument("--out", help="where to write results (default: the first folder)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="keep runs whose path inside its folder matches this glob (repeatable)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of the output's results.csv; a run collected now replaces its row",
    )
    parser.add_argument("--heatmap", help="a run (its path inside the first folder, or any path)")
    args = parser.parse_args(argv)
    roots = [Path(r) for r in args.roots]
    for root in roots:
        if not root.is_dir():
            raise SystemExit(f"{root}: not a folder of runs")
    rows, incomplete = collect(roots, args.only)
    out = Path(args.out or roots[0])
    if args.merge:
        if not (out / "results.csv").is_file():
            raise SystemExit(f"--merge: {out / 'results.csv'} does not exist; collect without it")
        rows = merge(read_rows(out / "results.csv"), rows)
    write(rows, incomplete, out)
    print(f"{len(rows)} runs, {len(incomplete)} incomplete -> {out / 'results.md'}")
    if args.heatmap:
        run = roots[0] / args.heatmap if (roots[0] / args.heatmap).is_dir() else Path(args.heatmap)
        print(f"density heatmap -> {density_heatmap(run, out)}")


if __name__ == "__main__":
    main()
