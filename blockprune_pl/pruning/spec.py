"""What to prune and how hard: validated once, on creation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from blockprune_pl.pruning.layouts import ROLES

GEOMETRIES = ("bsp", "tiles", "neurons", "irregular")
SCOPES = ("layer", "global")
PENALTY_MODES = ("grad", "proximal")


@dataclass(frozen=True)
class PruneSpec:
    geometry: str = "bsp"
    rate: float = 5.0  # prunable weights / kept weights
    block: tuple[int, int] = (1, 1)  # tiles only: [rows, cols] on W (out, in)
    col_blocks: int = 8  # bsp only: a group is [1, ceil(in / col_blocks)]
    roles: tuple[str, ...] = ROLES
    scope: str = "layer"
    penalty: bool = True
    reweighted: bool = True
    lam: float = 1e-4
    eps: float = 1e-3
    penalty_mode: str = "grad"
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "block", tuple(int(b) for b in self.block))
        object.__setattr__(self, "roles", tuple(self.roles))
        _choice("geometry", self.geometry, GEOMETRIES)
        _choice("scope", self.scope, SCOPES)
        _choice("penalty_mode", self.penalty_mode, PENALTY_MODES)
        rate = float(self.rate)
        if not math.isfinite(rate) or rate < 1.0:
            raise ValueError(f"prune.rate={self.rate!r} is not allowed: it must be finite and >= 1")
        object.__setattr__(self, "rate", rate)
        if len(self.block) != 2 or min(self.block) < 1:
            raise ValueError(f"prune.block={list(self.block)} is not allowed: two positive ints")
        if int(self.col_blocks) < 1:
            raise ValueError(f"prune.col_blocks={self.col_blocks} is not allowed: it must be >= 1")
        bad = [r for r in self.roles if r not in ROLES]
        if bad or not self.roles:
            raise ValueError(f"prune.roles={list(self.roles)} is not allowed; roles: {list(ROLES)}")
        if self.lam < 0 or not math.isfinite(self.lam):
            raise ValueError(f"prune.lam={self.lam} is not allowed: finite and >= 0")
        if self.eps <= 0 or not math.isfinite(self.eps):
            raise ValueError(f"prune.eps={self.eps} is not allowed: finite and > 0")

    @classmethod
    def from_dict(cls, d: dict) -> PruneSpec:
        """Build from a config mapping; keys that are not spec fields are ignored."""
        names = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            **{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        )

    @property
    def density(self) -> float:
        return 1.0 / self.rate

    def identity(self) -> dict:
        """What a checkpoint must agree on to resume: the groups and the target."""
        d = asdict(self)
        keys = ("geometry", "rate", "block", "col_blocks", "roles", "scope")
        return {k: (list(d[k]) if isinstance(d[k], tuple) else d[k]) for k in keys}


def _choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"prune.{key}={value!r} is not allowed; choose one of {list(allowed)}")
