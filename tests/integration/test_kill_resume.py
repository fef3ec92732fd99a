"""Runs killed with SIGKILL at random moments (some in the middle of a checkpoint write) and
re-run with ckpt_path=latest end exactly where an uninterrupted run ends, and never leave an
unreadable checkpoint or metrics.json behind. KILL_TRIALS sets the number of kills."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, TINY_RUN, assert_same_state, glue_dir
from tests.integration.test_resume import RUN as RESUME_RUN

TRIALS = int(os.environ.get("KILL_TRIALS", "3"))
# the resume test's run (a checkpoint at every epoch boundary), without exports
RUN = [*RESUME_RUN, "export.formats=[]"]
# In the child: the k-th checkpoint write stops half way and the process SIGKILLs itself.
KILL_IN_SAVE = """
import os, signal
k = int(os.environ.get("KILL_IN_SAVE", "0"))
if k:
    import io, torch
    real_save, calls = torch.save, [0]
    def save(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)) and str(f).endswith(".partial"):
            calls[0] += 1
            if calls[0] == k:
                buffer = io.BytesIO()
                real_save(obj, buffer, *args, **kwargs)
                with open(f, "wb") as out:
                    out.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                    out.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *args, **kwargs)
    torch.save = save
"""


def _command(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "blockprune_pl",
        f"task.data_dir={glue_dir()}",
        *TINY_RUN,
        *RUN,
        "ckpt_path=latest",
        f"hydra.run.dir={out}",
    ]


def _env(hook_dir: Path, kill_in_save: int = 0) -> dict:
    env = dict(os.environ, PYTHONPATH=f"{hook_dir}{os.pathsep}{ROOT}")
    env["KILL_IN_SAVE"] = str(kill_in_save)
    return env


def _final_state(out: Path):
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    cb = next(v for k, v in ckpt["callbacks"].items() if "PruningCallback" in k)
    return ckpt["state_dict"], cb, ckpt["global_step"]


def _assert_nothing_unreadable(out: Path) -> None:
    for path in (out / "checkpoints").glob("*.ckpt") if (out / "checkpoints").is_dir() else []:
        if not path.name.startswith("."):  # hidden partials are never read
            ckpt = torch.load(path, weights_only=False)
            assert "state_dict" in ckpt, path
    if (out / "metrics.json").exists():
        json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def hook_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hook")
    (folder / "sitecustomize.py").write_text(KILL_IN_SAVE)
    return folder


@pytest.fixture(scope="module")
def uninterrupted(hook_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    started = time.time()
    subprocess.run(_command(out), env=_env(hook_dir), check=True, capture_output=True)
    return out, time.time() - started


@pytest.mark.skipif(glue_dir() is None, reason="real GLUE Parquet folder not found")
@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_killed_run_resumes_to_the_uninterrupted_result(uninterrupted, hook_dir, tmp_path, trial):
    full, wall = uninterrupted
    rng = random.Random(trial)
    out = tmp_path / "run"
    # every third trial dies inside a checkpoint write (the k-th of about 20), the others at a
    # random moment of the run
    kill_in_save = rng.randint(1, 18) if trial % 3 == 0 else 0
    child = subprocess.Popen(
        _command(out),
        env=_env(hook_dir, kill_in_save),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        child.wait(timeout=None if kill_in_save else rng.uniform(0.3, 1.0) * wall)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    _assert_nothing_unreadable(out)
    done = subprocess.run(_command(out), env=_env(hook_dir), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_nothing_unreadable(out)
    full_w, full_cb, full_step = _final_state(full)
    res_w, res_cb, res_step = _final_state(out)
    assert res_step == full_step
    assert full_cb == res_cb
    assert_same_state(full_w, res_w)
    assert json.loads((out / "metrics.json").read_text())["final"]
