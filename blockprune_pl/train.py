"""`run(cfg)`: the whole job wired together, without the Hydra decorator so tests call it."""

from __future__ import annotations

import time
from dataclasses import dataclass
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
from blockprune_pl.checks import (
    check_checkpoint,
    check_export,
    check_numbers,
    check_reachable,
    check_teacher,
    check_wandb_credentials,
)
from blockprune_pl.data import GlueDataModule
from blockprune_pl.errors import ConfigError
from blockprune_pl.models import GlueModule, build_model, load_tokenizer
from blockprune_pl.pruning import (
    BlockPruner,
    PruneSpec,
    find_prunable,
    layout_for,
    pruning_stats,
    register_layout,
)
from blockprune_pl.record import RunRecord, code_version
from blockprune_pl.resolvers import register as register_resolvers
from blockprune_pl.summary import start_line, summary

register_resolvers()

PHASE_UNITS = ("epoch", "step")


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


def build_callbacks(cfg, pruner: BlockPruner | None, plan: PhasePlan, out_dir: Path):
    """Checkpointing always; pruning, block-norm logging and distillation with a pruner
    (rate > 1)."""
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
    if pruner is not None:
        pruning = PruningCallback(
            pruner,
            plan,
            int(cfg.prune.reweight_every),
            cfg.prune.schedule,
            int(cfg.prune.prune_every),
            cfg.prune.get("freeze_embeddings", False),
        )
        callbacks = [pruning, BlockNormLogger(pruning, int(cfg.prune.log_every)), *callbacks]
        if cfg.prune.distill.enabled:
            callbacks.insert(0, DistillationCallback(cfg.prune.distill, plan.finetune, out_dir))
    return callbacks, checkpoint, pruning


def run(cfg: DictConfig) -> dict:
    """Fine-tune (and prune) one model on one task; returns what metrics.json holds."""
    started = time.time()
    code = code_version()  # the code this process runs, read before the checkout can change
    ckpt_path, finished = resume_point(cfg)
    if finished is not None:
        return finished.to_dict()
    spec = preflight(cfg, ckpt_path)
    built = build(cfg, spec)
    print(start_line(cfg, spec, built.plan, built.trainer))
    fit(built, ckpt_path)
    return report(cfg, built, started, code).to_dict()


def resume_point(cfg) -> tuple[str | None, RunRecord | None]:
    """The checkpoint to resume from (ckpt_path, or with `latest` the newest readable one of
    this output_dir) and, with `latest`, the record of a run that had already finished."""
    out_dir = Path(cfg.output_dir)
    metrics_path = out_dir / "metrics.json"
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path == LATEST:
        if metrics_path.exists():  # a re-queued run that had finished: nothing to redo
            print(f"{metrics_path} exists: this run finished; nothing to resume")
            return None, RunRecord.read(metrics_path)
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
    return ckpt_path, None


def preflight(cfg, ckpt_path: str | None) -> PruneSpec:
    """Every check that needs no model or data, before any work."""
    if ckpt_path:
        check_checkpoint(ckpt_path)
    check_numbers(cfg)
    check_export(cfg.get("export"))
    check_wandb_credentials(cfg.logger)
    check_teacher(cfg)
    quiet_library_notices()
    return PruneSpec.from_dict(OmegaConf.to_container(cfg.prune, resolve=True))


@dataclass
class Built:
    """The pieces of one run, wired."""

    data: GlueDataModule
    model: torch.nn.Module
    plan: PhasePlan
    module: GlueModule
    trainer: L.Trainer
    checkpoint: ModelCheckpoint
    pruning: PruningCallback | None
    out_dir: Path


def build(cfg, spec: PruneSpec) -> Built:
    """Data, model, phase plan, LightningModule, callbacks and Trainer; the model's family and
    the target rate are checked before any step."""
    out_dir = Path(cfg.output_dir)
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
    pruner = BlockPruner(spec).prepare(model) if spec.rate > 1.0 else None
    if pruner is not None:
        check_reachable(pruner)
    segments = [
        (plan.finetune, 1.0),
        (plan.penalty, float(cfg.prune.penalty_lr_scale)),
        (plan.retrain, float(cfg.prune.retrain_lr_scale)),
    ]
    module = GlueModule(
        model,
        cfg.task,
        cfg.optim,
        [s for s in segments if s[0] > 0],
        data.val_suffixes,
        special_ids=tuple(tokenizer.all_special_ids),
    )
    callbacks, checkpoint, pruning = build_callbacks(cfg, pruner, plan, out_dir)
    trainer = instantiate(
        cfg.trainer,
        max_steps=plan.total,
        max_epochs=-1,
        callbacks=callbacks,
        logger=instantiate(cfg.logger),
        default_root_dir=str(out_dir),
        plugins=[AtomicCheckpointIO()],
    )
    return Built(data, model, plan, module, trainer, checkpoint, pruning, out_dir)


def fit(built: Built, ckpt_path: str | None) -> None:
    """Train through the phases, validate the final state, and save it as last.ckpt."""
    trainer, module = built.trainer, built.module
    trainer.fit(module, datamodule=built.data, ckpt_path=ckpt_path)
    validated = [h["step"] for h in module.history if "tag" not in h]
    if not validated or validated[-1] != trainer.global_step:
        trainer.validate(module, datamodule=built.data, verbose=False)
    # last.ckpt is the final state (masks, alpha, weights), whatever Lightning last saved
    trainer.save_checkpoint(built.out_dir / "checkpoints" / "last.ckpt")  # atomic


def report(cfg, built: Built, started: float, code: dict) -> RunRecord:
    """The run record, written before the exports (the results are safe first) and again
    with them; the console summary."""
    record = _record(cfg, built.module, built.model, built.plan, built.checkpoint, started)
    record.code = code
    record.checkpoints["last"] = str(built.out_dir / "checkpoints" / "last.ckpt")
    record.world_size = built.trainer.world_size
    pruning = built.pruning
    if pruning is not None and pruning.ranks_agree is not None:
        record.pruning["ranks_agree"] = pruning.ranks_agree
    if pruning is not None and pruning.pruner.pruned_energy is not None:
        # the share of the prunable weights' squared norm that the final prune removed
        record.pruning["pruned_energy"] = pruning.pruner.pruned_energy
    if built.trainer.is_global_zero:
        metrics_path = built.out_dir / "metrics.json"
        record.write(metrics_path)
        if cfg.get("export") and cfg.export.formats:
            record.exports, record.bench = export_at_end(built.out_dir, cfg.export)
            record.write(metrics_path)
        print(summary(record, built.out_dir))
    return record


def export_at_end(out_dir: Path, export_cfg) -> tuple[dict, dict | None]:
    """Write every configured export of the finished run; bench the first one if asked."""
    from blockprune_pl.export import export
    from blockprune_pl.export.bench import bench

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
        min_run_time=float(export_cfg.min_run_time),
        runtime=export_cfg.get("runtime", "eager"),
    )
    return folders, report


def _record(cfg, module, model, plan, checkpoint, started) -> RunRecord:
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
    return RunRecord(
        task=cfg.task.name,
        model=cfg.model.name,
        geometry=cfg.prune.geometry,
        target_rate=float(cfg.prune.rate),
        main_metric=main,
        final=strip([h for h in module.history if "tag" not in h][-1]),
        best=strip(max(selectable, key=lambda h: h[main])) if selectable else {},
        dense=strip(dense[-1]) if dense else {},
        before_prune=strip(before_prune[-1]) if before_prune else {},
        after_prune=strip(after_prune[-1]) if after_prune else {},
        distill=OmegaConf.to_container(cfg.prune.distill, resolve=True),
        steps={
            "finetune": plan.finetune,
            "penalty": plan.penalty,
            "retrain": plan.retrain,
            "total": plan.total,
        },
        params={
            "total": sum(p.numel() for p in model.parameters()),
            "encoder": sum(p.numel() for p in model.base_model.parameters()),
        },
        pruning=stats,
        checkpoints={"best": checkpoint.best_model_path, "last": checkpoint.last_model_path},
        wall_time_s=round(time.time() - started, 1),
        config=OmegaConf.to_container(cfg, resolve=True),
    )
