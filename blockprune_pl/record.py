"""The run record: what one run leaves in its `metrics.json`, written by `train`, read by
`collect` and `export`. One dataclass, so a field added or renamed is one change, checked."""

from __future__ import annotations

import json
import subprocess
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from blockprune_pl.errors import ConfigError
from blockprune_pl.io import write_json_atomic


@dataclass
class RunRecord:
    task: str
    model: str  # the run's label: a preset name, or the model folder's / hub id's last part
    geometry: str
    target_rate: float
    main_metric: str  # e.g. "val/acc"
    final: dict[str, float]  # validation metrics at the end of the run
    best: dict[str, float]  # the best selectable (pruned, final-shape) validation
    dense: dict[str, float]  # the dense model the pruning started from
    steps: dict[str, int]  # optimizer steps: finetune, penalty, retrain, total
    params: dict[str, int]
    pruning: dict  # measured: achieved rate, densities, kept heads/neurons, pruned_energy
    checkpoints: dict[str, str]
    wall_time_s: float
    config: dict  # the resolved Hydra config
    before_prune: dict[str, float] = field(default_factory=dict)  # right before the cut
    after_prune: dict[str, float] = field(default_factory=dict)  # right after, no retraining
    distill: dict = field(default_factory=dict)
    world_size: int = 1
    exports: dict[str, str] | None = None  # format -> folder, when the run exported
    bench: dict | None = None  # the bench report of the first export
    code: dict = field(default_factory=dict)  # the code that ran: version, git commit, dirty

    def metric(self, which: str = "final") -> float | None:
        """The main metric of `final`, `best`, `dense`, `before_prune` or `after_prune`."""
        return getattr(self, which).get(self.main_metric)

    def to_dict(self) -> dict:
        return asdict(self)

    def write(self, path: str | Path) -> Path:
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        """A record from its file; fields it does not know are ignored (newer writers)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path} is not a readable run record: {err}") from err
        known = {f.name for f in fields(cls)}
        required = {
            f.name
            for f in fields(cls)
            if f.default is MISSING and f.default_factory is MISSING  # type: ignore[misc]
        }
        missing = sorted(required - set(data))
        if missing:
            raise ConfigError(f"{path} is not a run record of this version: no {missing}")
        return cls(**{k: v for k, v in data.items() if k in known})


def code_version(root: Path | None = None) -> dict:
    """The package version and, when the package sits at the top of a git checkout, the commit
    and whether the package or its configs differed from it: two runs with the same config and
    different code are told apart. An installed copy inside some other repository (a venv in a
    project checkout) names no commit: that repository's commit is not this code's."""
    from blockprune_pl import __version__

    code = {"version": __version__}
    root = root or Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top_and_head = (git("rev-parse", "--show-toplevel", "HEAD") or "").split("\n")
    if len(top_and_head) == 2 and Path(top_and_head[0]).resolve() == root.resolve():
        code["commit"] = top_and_head[1]
        # the files that decide what a run does; edited reports and tests do not count
        code["dirty"] = bool(
            git("status", "--porcelain", "--untracked-files=no", "--", "blockprune_pl", "conf")
        )
    return code
