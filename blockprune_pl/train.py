"""`run(cfg)`: the whole job wired together, without the Hydra decorator so tests call it."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from blockprune_pl.callbacks import BlockNormLogger, PhasePlan, PruningCallback
from blockprune_pl.callbacks.console import progress_bar, quiet_library_notices
from blockprune_pl.callbacks.distill import DistillationCallback
from blockprune_pl.checkpoint_io import AtomicCheckpointIO, newest_readable_checkpoint
from blockprune_pl.data import GlueDataModule
from blockprune_pl.errors import ConfigError
from blockprune_pl.io import write_json_atomic
from blockprune_pl.models import GlueModule, build_model, load_tokenizer
from blockprune_pl.pruning import (
    PruneSpec,
    find_prunable,
    layout_for,
    pruning_stats,
    register_layout,
)
from blockprune_pl.resolvers import register as register_resolvers

register_resolvers()

PHASE_UNITS = ("epoch", "step")


def check_numbers(cfg) -> None:
    """Numbers the run needs before anything else reads them: the key, the value, what is
    allowed."""
    checks = [
        ("optim.batch_size", cfg.optim.batch_size, int, 1),
        ("optim.eval_batch_size", cfg.optim.eval_batch_size, int, 1),
        ("optim.lr", cfg.optim.lr, float, 0.0),
        ("prune.reweight_every", cfg.prune.reweight_every, int, 0),
        ("prune.prune_every", cfg.prune.prune_every, int, 1),
        ("prune.log_every", cfg.prune.log_every, int, 1),
        ("prune.penalty_lr_scale", cfg.prune.penalty_lr_scale, float, 0.0),
        ("prune.distill.alpha", cfg.prune.distill.alpha, float, 0.0),
        ("prune.distill.temperature", cfg.prune.distill.temperature, float, 0.0),
        ("prune.distill.hidden_weight", cfg.prune.distill.hidden_weight, float, 0.0),
        *((f"prune.phases.{k}", cfg.prune.phases[k], float, 0.0) for k in PHASE_KEYS),
    ]
    for key, value, kind, low in checks:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int:
            number = number and float(value).is_integer()
        if not number or not math.isfinite(value) or value < low:
            wanted = "an integer" if kind is int else "a number"
            raise ConfigError(f"{key}={value!r} is not allowed: {wanted} >= {low:g}")
    if cfg.prune.distill.alpha > 1:
        raise ConfigError(
            f"prune.distill.alpha={cfg.prune.distill.alpha!r} is not allowed: in [0, 1]"
        )
    if cfg.prune.distill.temperature <= 0:
        raise ConfigError(
            f"prune.distill.temperature={cfg.prune.distill.temperature!r} is not allowed: > 0"
        )


PHASE_KEYS = ("finetune", "penalty", "retrain")


def phase_plan(prune_cfg, steps_per_epoch: int) -> PhasePlan:
    """Phase lengths in optimizer steps; a dense run (rate 1) has only the fine-tune phase."""
    unit = prune_cfg.phase_unit
    if unit not in PHASE_UNITS:
        raise ConfigError(f"prune.phase_unit={unit!r} is not allowed; choose one of {PHASE_UNITS}")
    scale = steps_per_epoch if unit == "epoch" else 1
    steps = {
        k: int(round(float(prune_cfg.phases[k]) * scale))
        for k in ("finetune", "penalty", "retrain")
    }
    if any(v < 0 for v in steps.values()):
        raise ConfigError(f"prune.phases={dict(prune_cfg.phases)} must be >= 0")
    if float(prune_cfg.rate) == 1.0:
        steps["penalty"] = steps["retrain"] = 0
    if sum(steps.values()) == 0:
        raise ConfigError(f"prune.phases={dict(prune_cfg.phases)} gives no training step")
    return PhasePlan(**steps)


# ckpt_path=latest: the newest readable checkpoint of this run's output_dir (after a crash or a
# pre-emption, re-run the same command with it)
LATEST = "latest"


def check_checkpoint(path: str) -> None:
    """Fail before any work on a checkpoint that cannot be resumed from."""
    if not Path(path).is_file():
        raise ConfigError(f"ckpt_path={path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ConfigError(
            f"ckpt_path={path} is not a readable checkpoint (truncated or corrupt: {err}); "
            "resume from another one, e.g. checkpoints/last.ckpt or a step*.ckpt of the run"
        ) from err
    missing = [k for k in ("state_dict", "global_step") if k not in ckpt]
    if missing:
        raise ConfigError(f"ckpt_path={path} is not a Lightning checkpoint (no {missing})")


def check_wandb_credentials(logger_cfg) -> None:
    """W&B online without an account would prompt or fail deep inside wandb: say so first."""
    if not str(logger_cfg.get("_target_", "")).endswith("WandbLogger") or logger_cfg.get("offline"):
        return
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun"):
        return
    if os.environ.get("WANDB_API_KEY"):
        return
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"):
        return
    raise ConfigError(
        "logger=wandb is online but no W&B credentials were found (WANDB_API_KEY, ~/.netrc). "
        "Fix: `wandb login`, or set WANDB_API_KEY, or log offline with WANDB_MODE=offline "
        "(or logger.offline=true) and upload later with `wandb sync`."
    )


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


def build_callbacks(cfg, spec: PruneSpec, plan: PhasePlan, out_dir: Path):
    """Checkpointing always; pruning, block-norm logging and distillation when rate > 1."""
    checkpoint = ModelCheckpoint(
        dirpath=out_dir / "checkpoints",
        monitor="val/select",
        mode="max",
        save_top_k=1,
        save_last=True,
        filename="best-step{step}",
        auto_insert_metric_name=False,
    )
    callbacks = [checkpoint]
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(progress_bar())
    if cfg.get("checkpoint_every_n_steps"):  # periodic checkpoints, all kept: pre-emption safety
        callbacks.append(
            ModelCheckpoint(
                dirpath=out_dir / "checkpoints",
                save_top_k=-1,
                every_n_train_steps=int(cfg.checkpoint_every_n_steps),
                filename="step{step}",
                auto_insert_metric_name=False,
            )
        )
    pruning = None
    if spec.rate > 1.0:
        pruning = PruningCallback(
            spec,
            plan,
            int(cfg.prune.reweight_every),
            cfg.prune.schedule,
            int(cfg.prune.prune_every),
        )
        callbacks = [pruning, BlockNormLogger(pruning, int(cfg.prune.log_every)), *callbacks]
        if cfg.prune.distill.enabled:
            callbacks.insert(0, DistillationCallback(cfg.prune.distill, plan.finetune, out_dir))
    return callbacks, checkpoint, pruning


def run(cfg: DictConfig) -> dict:
    """Fine-tune (and prune) one model on one task; returns what metrics.json holds."""
    started = time.time()
    out_dir = Path(cfg.output_dir)
    metrics_path = out_dir / "metrics.json"
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path == LATEST:
        if metrics_path.exists():  # a re-queued run that had finished: nothing to redo
            print(f"{metrics_path} exists: this run finished; nothing to resume")
            return json.loads(metrics_path.read_text())
        ckpt_path = newest_readable_checkpoint(out_dir / "checkpoints")
        print(
            f"resuming from {ckpt_path}"
            if ckpt_path
            else f"ckpt_path=latest: no readable checkpoint in {out_dir / 'checkpoints'}; "
            "starting from the beginning"
        )
        ckpt_path = str(ckpt_path) if ckpt_path else None
    if metrics_path.exists() and not ckpt_path:
        raise ConfigError(
            f"{metrics_path} already holds results; refusing to overwrite them. Pick another "
            "output_dir (hydra.run.dir=...), or resume with ckpt_path=..."
        )
    if ckpt_path:
        check_checkpoint(ckpt_path)
    check_numbers(cfg)
    check_export(cfg.get("export"))
    check_wandb_credentials(cfg.logger)
    quiet_library_notices()
    spec = PruneSpec.from_dict(OmegaConf.to_container(cfg.prune, resolve=True))
    L.seed_everything(int(cfg.seed), workers=True)

    tokenizer = load_tokenizer(cfg.model)
    data = GlueDataModule(
        cfg.task,
        tokenizer,
        cfg.optim.batch_size,
        cfg.optim.eval_batch_size,
        seed=int(cfg.seed),
        num_workers=cfg.optim.num_workers,
    )
    data.setup("fit")
    accumulate = int(cfg.trainer.get("accumulate_grad_batches", 1) or 1)
    plan = phase_plan(cfg.prune, data.steps_per_epoch(accumulate))
    model = build_model(cfg.model, int(cfg.task.num_labels), tokenizer, seed=int(cfg.seed))
    if cfg.model.get("layout"):  # roles given in the config: {role: regex, layer index = group 1}
        register_layout(model.config.model_type, dict(cfg.model.layout))
    layout_for(model)  # fail now, not after the fine-tune, on a family whose roles are unclear
    if spec.rate > 1.0:
        check_reachable(spec, model)

    segments = [
        (plan.finetune, 1.0),
        (plan.penalty, float(cfg.prune.penalty_lr_scale)),
        (plan.retrain, 1.0),
    ]
    module = GlueModule(
        model, cfg.task, cfg.optim, [s for s in segments if s[0] > 0], data.val_suffixes
    )
    callbacks, checkpoint, pruning = build_callbacks(cfg, spec, plan, out_dir)
    trainer = instantiate(
        cfg.trainer,
        max_steps=plan.total,
        max_epochs=-1,
        callbacks=callbacks,
        logger=instantiate(cfg.logger),
        default_root_dir=str(out_dir),
        plugins=[AtomicCheckpointIO()],
    )
    print(start_line(cfg, spec, plan, trainer))
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    validated = [h["step"] for h in module.history if "tag" not in h]
    if not validated or validated[-1] != trainer.global_step:
        trainer.validate(module, datamodule=data, verbose=False)
    # last.ckpt is the final state (masks, alpha, weights), whatever Lightning last saved
    final_ckpt = out_dir / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(final_ckpt)  # atomic: AtomicCheckpointIO

    results = _results(cfg, module, model, plan, checkpoint, started)
    results["checkpoints"]["last"] = str(final_ckpt)
    results["world_size"] = trainer.world_size
    if pruning is not None and pruning.ranks_agree is not None:
        results["pruning"]["ranks_agree"] = pruning.ranks_agree
    if pruning is not None and pruning.pruner.pruned_energy is not None:
        # the share of the prunable weights' squared norm that the final prune removed
        results["pruning"]["pruned_energy"] = pruning.pruner.pruned_energy
    if trainer.is_global_zero:
        write_json_atomic(metrics_path, results)  # the results are safe before the export starts
        if cfg.get("export") and cfg.export.formats:
            results["exports"], results["bench"] = export_at_end(out_dir, cfg.export)
            write_json_atomic(metrics_path, results)
        print(summary(results, out_dir))
    return results


def check_reachable(spec: PruneSpec, model) -> None:
    """A target rate the geometry cannot reach is refused before any training."""
    from blockprune_pl.pruning import BlockPruner

    highest = BlockPruner(spec).prepare(model).max_rate()
    if spec.rate > highest:
        raise ConfigError(
            f"prune.rate={spec.rate:g} cannot be reached with prune.geometry={spec.geometry} and "
            f"scope={spec.scope}: every {'model' if spec.scope == 'global' else 'matrix'} keeps "
            f"at least one group, so the highest rate is {highest:.1f}; choose prune.rate <= "
            f"{highest:.1f}"
        )


def check_export(export_cfg) -> None:
    from blockprune_pl.bench import RUNTIMES
    from blockprune_pl.export import FORMATS

    for fmt in (export_cfg.formats if export_cfg else None) or []:
        if fmt not in FORMATS:
            raise ConfigError(
                f"export.formats: {fmt!r} is not an export format; choose from {list(FORMATS)}"
            )
    runtime = export_cfg.get("runtime", "eager") if export_cfg else "eager"
    if runtime not in RUNTIMES:
        raise ConfigError(f"export.runtime: {runtime!r} is not a runtime; choose from {RUNTIMES}")


def export_at_end(out_dir: Path, export_cfg) -> tuple[dict, dict | None]:
    """Write every configured export of the finished run; bench the first one if asked."""
    from blockprune_pl.bench import bench
    from blockprune_pl.export import export

    folders = {
        fmt: str(export(out_dir, out_dir / f"export_{fmt}", fmt)) for fmt in export_cfg.formats
    }
    if not export_cfg.bench:
        return folders, None
    report = bench(  # restores the thread count it changes
        folders[export_cfg.formats[0]],
        list(export_cfg.batches),
        int(export_cfg.seq),
        list(export_cfg.threads),
        repeats=int(export_cfg.repeats),
        runtime=export_cfg.get("runtime", "eager"),
    )
    return folders, report


def _results(cfg, module, model, plan, checkpoint, started) -> dict:
    main = f"val/{cfg.task.main_metric}"
    selectable = [h for h in module.history if h["selectable"]]
    dense = [h for h in module.history if h.get("tag") == "dense"] or [
        h for h in module.history if 0 < h["step"] <= plan.finetune and "tag" not in h
    ]
    tagged = lambda tag: [h for h in module.history if h.get("tag") == tag]  # noqa: E731
    before_prune, after_prune = tagged("penalty"), tagged("after_prune")
    prunables = find_prunable(model, layout_for(model), tuple(cfg.prune.roles))
    stats = pruning_stats(model, prunables, model.config.num_attention_heads)
    strip = lambda h: {k: v for k, v in h.items() if k.startswith("val/")}  # noqa: E731
    return {
        "task": cfg.task.name,
        "model": cfg.model.name,
        "geometry": cfg.prune.geometry,
        "target_rate": float(cfg.prune.rate),
        "main_metric": main,
        "final": strip([h for h in module.history if "tag" not in h][-1]),
        "best": strip(max(selectable, key=lambda h: h[main])) if selectable else {},
        "dense": strip(dense[-1]) if dense else {},
        "before_prune": strip(before_prune[-1]) if before_prune else {},
        "after_prune": strip(after_prune[-1]) if after_prune else {},
        "distill": OmegaConf.to_container(cfg.prune.distill, resolve=True),
        "steps": {
            "finetune": plan.finetune,
            "penalty": plan.penalty,
            "retrain": plan.retrain,
            "total": plan.total,
        },
        "params": {
            "total": sum(p.numel() for p in model.parameters()),
            "encoder": sum(p.numel() for p in model.base_model.parameters()),
        },
        "pruning": stats,
        "checkpoints": {"best": checkpoint.best_model_path, "last": checkpoint.last_model_path},
        "wall_time_s": round(time.time() - started, 1),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def summary(results: dict, out_dir: Path) -> str:
    main = results["main_metric"]
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    rate = results["pruning"]["achieved_rate"]
    lines = [
        "",
        f"== blockprune_pl: {results['model']} on {results['task']} "
        f"({results['geometry']}, target rate {results['target_rate']:g}) ==",
        f"dense {main}:  {fmt(results['dense'].get(main))}",
    ]
    if results.get("after_prune"):
        energy = results["pruning"].get("pruned_energy", {}).get("total")
        lines += [
            f"before prune:  {fmt(results['before_prune'].get(main))}",
            f"after prune:   {fmt(results['after_prune'].get(main))} (no retraining yet; "
            f"the cut removed {100 * (energy or 0):.2f} % of the prunable squared norm)",
        ]
    lines += [
        f"final {main}:  {fmt(results['final'].get(main))}",
        f"achieved rate: {rate:.3f}" if math.isfinite(rate) else "achieved rate: inf",
        f"wall time:     {results['wall_time_s']:.0f} s",
        f"outputs:       {out_dir} (metrics.json, checkpoints/)",
    ]
    dense, final = results["dense"].get(main), results["final"].get(main)
    if dense is not None and final is not None:
        lines.insert(-3, f"drop:          {100 * (dense - final):.2f} points (dense - final)")
    if results.get("bench"):
        row = results["bench"]["results"][0]
        lines.insert(
            -1,
            f"speedup:       {row['speedup']:.2f}x ({next(iter(results['exports']))} export, "
            f"batch {row['batch']}, {row['threads']} thread(s); ideal "
            f"{results['bench']['encoder_linear_flop_ideal']:.2f}x)",
        )
    return "\n".join(lines)
