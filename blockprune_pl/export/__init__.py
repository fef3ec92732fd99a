"""Exported forms of a pruned model (hf, compact, gathered, onnx, int8), loading them back, and
timing them (`bench`). Builds on `blockprune_pl.pruning`; nothing there depends on this."""

from blockprune_pl.export.formats import (
    FORMATS,
    export,
    export_model,
    find_checkpoint,
    load_pruned,
    load_run,
    save_compact,
    save_gathered,
)
from blockprune_pl.export.onnx import save_onnx

__all__ = [
    "FORMATS",
    "export",
    "export_model",
    "find_checkpoint",
    "load_pruned",
    "load_run",
    "save_compact",
    "save_gathered",
    "save_onnx",
]
