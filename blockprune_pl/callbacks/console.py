"""A quieter console: runs are sized in optimizer steps, and library notices that say nothing
about the run are dropped."""

from __future__ import annotations

import logging
import warnings

from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.utilities.imports import _RICH_AVAILABLE


class _DropNotices(logging.Filter):
    """Drops log records that say nothing about the run: Lightning's advertisement for a cloud
    logger (the run's loggers are configured), and its note at each checkpoint save that the
    save holds the full training state (it always does here: resume needs it)."""

    NOTICES = ("litlogger", "`weights_only` was not set")

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(n in record.getMessage() for n in self.NOTICES)


def quiet_library_notices() -> None:
    # Lightning's pytree helper still builds torch's deprecated LeafSpec: one FutureWarning per
    # run, meant for Lightning's developers
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    for name in (
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
        "lightning.pytorch.trainer.connectors.checkpoint_connector",
    ):
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropNotices) for f in log.filters):
            log.addFilter(_DropNotices())


class StepProgressBar(RichProgressBar):
    """Rich's bar reads "Epoch 3/-2" when a run is bounded by max_steps (max_epochs=-1): show
    the optimizer step against the run's total instead."""

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        return f"Epoch {current_epoch} · step {trainer.global_step}/{trainer.max_steps}"


def progress_bar():
    return StepProgressBar() if _RICH_AVAILABLE else TQDMProgressBar()
