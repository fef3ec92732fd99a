"""Is the Hugging Face hub usable right now? Answered in seconds, so offline runs fail fast."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

_TRUE = {"1", "true", "yes", "on"}


def hub_offline_reason(timeout: float = 3.0) -> str | None:
    """None when the hub looks reachable, else why not (offline switch or no connection)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]} is set"
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return None
    except OSError as err:
        return f"{host}:443 is unreachable ({err.__class__.__name__}: {err})"
