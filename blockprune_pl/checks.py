"""Checks that run before any training: each names the bad key or file, the value and what
is allowed."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from blockprune_pl.errors import ConfigError

PHASE_KEYS = ("finetune", "penalty", "retrain")


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
        ("prune.retrain_lr_scale", cfg.prune.retrain_lr_scale, float, 0.0),
        ("prune.distill.alpha", cfg.prune.distill.alpha, float, 0.0),
        ("prune.distill.temperature", cfg.prune.distill.temperature, float, 0.0),
        ("prune.distill.hidden_weight", cfg.prune.distill.hidden_weight, float, 0.0),
        ("prune.distill.augment", cfg.prune.distill.get("augment", 0.0), float, 0.0),
        (
            "prune.distill.attention_weight",
            cfg.prune.distill.get("attention_weight", 0.0),
            float,
            0.0,
        ),
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
    augment = cfg.prune.distill.get("augment", 0.0)
    if augment >= 1:
        raise ConfigError(f"prune.distill.augment={augment!r} is not allowed: a number in [0, 1)")
    if augment and not cfg.prune.distill.enabled:
        raise ConfigError(
            f"prune.distill.augment={augment!r} needs the teacher that labels the changed pairs: "
            "set prune.distill.enabled=true, or prune.distill.augment=0"
        )
    if cfg.prune.distill.temperature <= 0:
        raise ConfigError(
            f"prune.distill.temperature={cfg.prune.distill.temperature!r} is not allowed: > 0"
        )


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


def check_reachable(pruner) -> None:
    """A target rate the geometry cannot reach is refused before any training (`pruner`: a
    prepared BlockPruner)."""
    spec = pruner.spec
    highest = pruner.max_rate()
    if spec.rate > highest:
        raise ConfigError(
            f"prune.rate={spec.rate:g} cannot be reached with prune.geometry={spec.geometry} and "
            f"scope={spec.scope}: every {'model' if spec.scope == 'global' else 'matrix'} keeps "
            f"at least one group, so the highest rate is {highest:.1f}; choose prune.rate <= "
            f"{highest:.1f}"
        )


def check_export(export_cfg) -> None:
    from blockprune_pl.export import FORMATS
    from blockprune_pl.export.bench import RUNTIMES

    for fmt in (export_cfg.formats if export_cfg else None) or []:
        if fmt not in FORMATS:
            raise ConfigError(
                f"export.formats: {fmt!r} is not an export format; choose from {list(FORMATS)}"
            )
    runtime = export_cfg.get("runtime", "eager") if export_cfg else "eager"
    if runtime not in RUNTIMES:
        raise ConfigError(f"export.runtime: {runtime!r} is not a runtime; choose from {RUNTIMES}")


def check_teacher(cfg) -> None:
    """A teacher folder named in the config must exist and predict the task's labels; found
    only when distillation starts, after the fine-tune, it would cost that phase."""
    distill = cfg.prune.distill
    if not distill.enabled or not distill.get("teacher") or float(cfg.prune.rate) <= 1.0:
        return
    from transformers import AutoConfig

    from blockprune_pl.models.encoder import head_labels

    teacher = str(distill.teacher)
    if not (Path(teacher) / "config.json").is_file():
        raise ConfigError(
            f"prune.distill.teacher={teacher!r} is not a saved model folder (no config.json); "
            "set it to one, or to null for the model the fine-tune phase leaves"
        )
    labels = head_labels(AutoConfig.from_pretrained(teacher))
    if labels != int(cfg.task.num_labels):
        head = f"a head with {labels} label(s)" if labels is not None else "no classification head"
        raise ConfigError(
            f"prune.distill.teacher={teacher!r} has {head}, but task {cfg.task.name!r} needs "
            f"{int(cfg.task.num_labels)}; distil from a model fine-tuned on this task, or set "
            "prune.distill.teacher=null"
        )
