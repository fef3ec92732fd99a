"""Checkpoints written atomically, and the newest readable one found again after a crash.

Lightning saves through fsspec, whose local transaction writes to the system temp folder and
then moves the file: across file systems that move is a copy, and a process killed during it
leaves a truncated checkpoint under the final name.
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from blockprune_pl.io import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if "://" in str(path):  # remote storage: Lightning's own transaction
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_file(path) as tmp:
            torch.save(checkpoint, tmp)


def newest_readable_checkpoint(folder: str | Path) -> Path | None:
    """The readable Lightning checkpoint in `folder` that is furthest along (highest global
    step), or None; partials and unreadable files are skipped. At equal steps a periodic
    `step*.ckpt` wins: it is written at the end of the optimizer step, where a resume replays
    the uninterrupted run bit for bit; best/last are written after the validation that
    follows, and a resume from there starts the next epoch in another state."""
    folder = Path(folder)
    found = []
    for path in folder.glob("*.ckpt") if folder.is_dir() else []:
        if path.name.startswith("."):
            continue
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
            step = int(ckpt["global_step"])
        except Exception:
            continue
        if "state_dict" in ckpt:
            found.append((step, path.name.startswith("step"), path.stat().st_mtime_ns, path))
    return max(found)[-1] if found else None
