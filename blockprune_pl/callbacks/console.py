"""A quieter console: runs are sized in optimizer steps, and two library notices say nothing
about the run."""

from __future__ import annotations

import logging

from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.utilities.imports import _RICH_AVAILABLE


class _DropLitLoggerTip(logging.Filter):
    """Lightning advertises a cloud logger on every run; the run's loggers are configured."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def quiet_library_notices() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropLitLoggerTip) for f in log.filters):
            log.addFilter(_DropLitLoggerTip())


class StepProgressBar(RichProgressBar):
    """Rich's bar reads "Epoch 3/-2" when a run is bounded by max_steps (max_epochs=-1): show
    the optimizer step against the run's total instead."""

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        return f"Epoch {current_epoch} · step {trainer.global_step}/{trainer.max_steps}"


def progress_bar():
    return StepProgressBar() if _RICH_AVAILABLE else TQDMProgressBar()
