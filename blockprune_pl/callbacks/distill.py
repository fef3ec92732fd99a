"""Attach a frozen dense teacher when the penalty phase starts; record where it came from so a
resumed run reloads it from that source instead of storing it in every checkpoint."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
from transformers import AutoModelForSequenceClassification

from blockprune_pl.errors import ConfigError
from blockprune_pl.io import atomic_folder
from blockprune_pl.models.encoder import resolve_name_or_path


class DistillationCallback(L.Callback):
    def __init__(self, distill, start_step: int, out_dir: str | Path):
        if not 0.0 <= float(distill.alpha) <= 1.0:
            raise ConfigError(f"prune.distill.alpha={distill.alpha} must be in [0, 1]")
        if float(distill.temperature) <= 0:
            raise ConfigError(f"prune.distill.temperature={distill.temperature} must be > 0")
        self.distill, self.start_step, self.out_dir = distill, start_step, Path(out_dir)
        self.teacher_path = resolve_name_or_path(distill.teacher) if distill.teacher else None

    def on_train_start(self, trainer, pl_module):
        self._attach(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._attach(trainer, pl_module)

    def _attach(self, trainer, pl_module) -> None:
        if pl_module.teacher is not None or trainer.global_step < self.start_step:
            return
        if self.teacher_path is None:  # the dense model as the fine-tune phase leaves it
            teacher = copy.deepcopy(pl_module.model)
            path = self.out_dir / "teacher"
            if trainer.is_global_zero:
                with atomic_folder(path) as partial:
                    teacher.save_pretrained(partial)
            trainer.strategy.barrier()
            self.teacher_path = str(path)
        else:
            if not Path(self.teacher_path).is_dir():
                raise FileNotFoundError(
                    f"teacher folder {self.teacher_path} not found: set prune.distill.teacher to "
                    "a saved model folder"
                )
            teacher = AutoModelForSequenceClassification.from_pretrained(self.teacher_path)
            teacher = teacher.to(
                device=pl_module.device, dtype=next(pl_module.model.parameters()).dtype
            )
        pl_module.set_teacher(teacher, self.distill)
        size_mb = sum(p.numel() * p.element_size() for p in teacher.parameters()) / 2**20
        for logger in trainer.loggers:
            logger.log_metrics({"distill/teacher_mb": size_mb}, step=trainer.global_step)

    def state_dict(self) -> dict:
        return {"teacher_path": self.teacher_path}

    def load_state_dict(self, state: dict) -> None:
        self.teacher_path = state["teacher_path"] or self.teacher_path
