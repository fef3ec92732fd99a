"""What a run prints: one line before the first step, the summary at the end."""

from __future__ import annotations

import math
from pathlib import Path

from blockprune_pl.callbacks import PhasePlan
from blockprune_pl.pruning import PruneSpec
from blockprune_pl.record import RunRecord


def start_line(cfg, spec: PruneSpec, plan: PhasePlan, trainer) -> str:
    """What this run is, in one line, before the first step."""
    what = "dense" if spec.rate <= 1 else f"{spec.geometry} rate {spec.rate:g}"
    device = trainer.strategy.root_device
    ranks = f" x {trainer.world_size}" if trainer.world_size > 1 else ""
    return (
        f"== {cfg.model.name} on {cfg.task.name}: {what}; optimizer steps finetune "
        f"{plan.finetune}, penalty {plan.penalty}, retrain {plan.retrain} (total {plan.total}); "
        f"device {device}{ranks}; output {cfg.output_dir} =="
    )


def summary(record: RunRecord, out_dir: Path) -> str:
    main = record.main_metric
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    rate = record.pruning["achieved_rate"]
    lines = [
        "",
        f"== blockprune_pl: {record.model} on {record.task} "
        f"({record.geometry}, target rate {record.target_rate:g}) ==",
        f"dense {main}:  {fmt(record.metric('dense'))}",
    ]
    if record.after_prune:
        energy = record.pruning.get("pruned_energy", {}).get("total")
        lines += [
            f"before prune:  {fmt(record.metric('before_prune'))}",
            f"after prune:   {fmt(record.metric('after_prune'))} (no retraining yet; "
            f"the cut removed {100 * (energy or 0):.2f} % of the prunable squared norm)",
        ]
    lines += [
        f"final {main}:  {fmt(record.metric('final'))}",
        f"achieved rate: {rate:.3f}" if math.isfinite(rate) else "achieved rate: inf",
        f"wall time:     {record.wall_time_s:.0f} s",
        f"outputs:       {out_dir} (metrics.json, checkpoints/)",
    ]
    dense, final = record.metric("dense"), record.metric("final")
    if dense is not None and final is not None:
        lines.insert(-3, f"drop:          {100 * (dense - final):.2f} points (dense - final)")
    if record.bench:
        row = record.bench["results"][0]
        lines.insert(
            -1,
            f"speedup:       {row['speedup']:.2f}x ({next(iter(record.exports))} export, "
            f"batch {row['batch']}, {row['threads']} thread(s); ideal "
            f"{record.bench['encoder_linear_flop_ideal']:.2f}x)",
        )
    return "\n".join(lines)
