"""Files and folders are written whole or not at all: a temp beside the target (same file
system, so the rename is atomic), then a rename. A process killed mid-write leaves the old
target, or none, and a hidden partial that the next write replaces."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _plain(value):
    """JSON has no inf/NaN: write them as strings a reader can spot."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yields a temp path beside `path`; on success it is synced and renamed onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yields an empty temp folder beside `path`; on success it replaces `path` whole."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        if path.exists():
            shutil.rmtree(path)
        partial.rename(path)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def write_json_atomic(path: str | Path, data: dict) -> Path:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(_plain(data), indent=2, sort_keys=False))
    return Path(path)
