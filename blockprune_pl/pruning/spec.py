"""What to prune and how hard: validated once, on creation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from blockprune_pl.errors import ConfigError
from blockprune_pl.pruning.layouts import ROLES

GEOMETRIES = ("bsp", "tiles", "neurons", "hybrid", "heads_bsp", "irregular")
SCOPES = ("layer", "global")
PENALTY_MODES = ("grad", "proximal")
TARGETS = ("all", "doomed")
LAM_PER = ("step", "phase")
QK_CUTS = ("same", "dims", "heads")
SCORES = ("norm", "fisher")


@dataclass(frozen=True)
class PruneSpec:
    geometry: str = "bsp"
    rate: float = 5.0  # prunable weights / kept weights
    block: tuple[int, int] = (1, 1)  # tiles only: [rows, cols] on W (out, in)
    # bsp, hybrid's attention and heads_bsp's FFN: a group is [1, ceil(in / col_blocks)]
    col_blocks: int = 8
    roles: tuple[str, ...] = ROLES
    scope: str = "layer"
    penalty: bool = True
    reweighted: bool = True
    lam: float = 1e-4
    eps: float = 1e-3
    penalty_mode: str = "grad"
    # doomed: penalise only the groups the prune would now remove, so the kept ones compensate
    target: str = "all"
    # lam per optimizer step (the paper), or the whole penalty phase's shrinkage (proximal only)
    lam_per: str = "step"
    # alpha and eps in units of each matrix's median group norm: lam is then dimensionless
    relative: bool = False
    min_density: float = 0.0  # scope=global: no matrix keeps less than this share of its groups
    # bsp/tiles: every column block of a matrix keeps the same number of blocks, so the
    # gathered form is one batched GEMM with no padding
    balance: bool = False
    # at every hard prune, refit the kept weights of each matrix by least squares to its output
    # on `refit_rows` calibration rows (the training split's): the cut then costs far less
    refit: bool = False
    refit_rows: int = 256
    # per role, its own rate (e.g. {"q": 1, "k": 1}: q and k stay dense); the roles not named
    # share the rest, so that the prunable weights as a whole still keep 1 / `rate`
    role_rates: tuple[tuple[str, float], ...] = ()
    # the attention roles' density over the FFN roles' (1: the same everywhere); the FFN makes
    # up the rate, so that the whole still keeps 1 / `rate`
    attn_ratio: float = 1.0
    # same: q and k are cut like the other matrices | dims: in coupled head dimensions, row d of
    # q with row d of k (and their biases), every head keeping as many: a cut dimension drops
    # one term q_d * k_d of the head's attention logits instead of perturbing all of them
    qk: str = "same"
    # what ranks the groups for the doomed set and the cut: norm (RMS of the weights) | fisher:
    # the squared first-order change of the loss were the group removed, averaged over the
    # training steps (the Fisher of the group's mask, as Kwon et al. 2022 rank heads and neurons)
    score: str = "norm"
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        for name in ("rate", "lam", "eps", "min_density", "attn_ratio"):
            object.__setattr__(self, name, _typed(name, getattr(self, name), float))
        object.__setattr__(self, "col_blocks", _typed("col_blocks", self.col_blocks, int))
        object.__setattr__(self, "refit_rows", _typed("refit_rows", self.refit_rows, int))
        if self.refit_rows < 1:
            raise ConfigError(f"prune.refit_rows={self.refit_rows} is not allowed: it must be >= 1")
        for name in ("penalty", "reweighted", "relative", "balance", "refit"):
            _typed(name, getattr(self, name), bool)
        if isinstance(self.block, (str, int, float)) or len(tuple(self.block)) != 2:
            raise ConfigError(f"prune.block={self.block!r} is not allowed: two positive ints")
        block = tuple(_typed("block", b, int) for b in self.block)
        object.__setattr__(self, "block", block)
        object.__setattr__(self, "roles", tuple(self.roles))
        object.__setattr__(self, "role_rates", _role_rates(self.role_rates, self.roles))
        if self.role_rates and self.scope != "layer":
            raise ConfigError(
                f"prune.role_rates={dict(self.role_rates)} needs prune.scope='layer' (a global "
                f"ranking sets no rate per role; got scope={self.scope!r})"
            )
        if not math.isfinite(self.attn_ratio) or self.attn_ratio <= 0:
            raise ConfigError(
                f"prune.attn_ratio={self.attn_ratio!r} is not allowed: a finite number > 0"
            )
        if self.attn_ratio != 1.0 and self.role_rates:
            raise ConfigError(
                f"prune.attn_ratio={self.attn_ratio:g} needs no prune.role_rates (got "
                f"role_rates={dict(self.role_rates)}): set one split of the rate "
                "(prune.attn_ratio=1 for role_rates)"
            )
        _choice("geometry", self.geometry, GEOMETRIES)
        _choice("scope", self.scope, SCOPES)
        _choice("penalty_mode", self.penalty_mode, PENALTY_MODES)
        _choice("target", self.target, TARGETS)
        _choice("lam_per", self.lam_per, LAM_PER)
        _choice("qk", self.qk, QK_CUTS)
        _choice("score", self.score, SCORES)
        if self.qk != "same" and (
            self.geometry in ("neurons", "heads_bsp") or self.scope != "layer" or self.balance
        ):
            raise ConfigError(
                f"prune.qk={self.qk!r} needs prune.geometry in ['bsp', 'tiles', 'hybrid', "
                f"'irregular'], prune.scope='layer' and prune.balance=false (got "
                f"geometry={self.geometry!r}, scope={self.scope!r}, balance={self.balance}); "
                "or set prune.qk=same"
            )
        if self.qk != "same" and not {"q", "k"} <= set(self.roles):
            raise ConfigError(
                f"prune.qk={self.qk!r} cuts q and k together; prune.roles={list(self.roles)} "
                "must hold both, or set prune.qk=same"
            )
        if self.lam_per == "phase" and self.penalty_mode != "proximal":
            raise ConfigError(
                "prune.lam_per='phase' needs prune.penalty_mode='proximal' (under Adam a "
                "gradient term has no phase-wide size); set one or the other"
            )
        if self.balance and (self.geometry not in ("bsp", "tiles") or self.scope != "layer"):
            raise ConfigError(
                f"prune.balance=true needs prune.geometry in ['bsp', 'tiles'] and "
                f"prune.scope='layer' (got geometry={self.geometry!r}, scope={self.scope!r})"
            )
        if not 0.0 <= float(self.min_density) <= 1.0:
            raise ConfigError(f"prune.min_density={self.min_density} is not allowed: in [0, 1]")
        rate = float(self.rate)
        if not math.isfinite(rate) or rate < 1.0:
            raise ConfigError(
                f"prune.rate={self.rate!r} is not allowed: it must be finite and >= 1"
            )
        object.__setattr__(self, "rate", rate)
        if len(self.block) != 2 or min(self.block) < 1:
            raise ConfigError(f"prune.block={list(self.block)} is not allowed: two positive ints")
        if int(self.col_blocks) < 1:
            raise ConfigError(f"prune.col_blocks={self.col_blocks} is not allowed: it must be >= 1")
        bad = [r for r in self.roles if r not in ROLES]
        if bad or not self.roles:
            raise ConfigError(
                f"prune.roles={list(self.roles)} is not allowed; roles: {list(ROLES)}"
            )
        if self.lam < 0 or not math.isfinite(self.lam):
            raise ConfigError(f"prune.lam={self.lam} is not allowed: finite and >= 0")
        if self.eps <= 0 or not math.isfinite(self.eps):
            raise ConfigError(f"prune.eps={self.eps} is not allowed: finite and > 0")

    @classmethod
    def from_dict(cls, d: dict) -> PruneSpec:
        """Build from a config mapping; keys that are not spec fields are ignored."""
        names = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            **{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        )

    def role_rate(self, role: str) -> float | None:
        """The rate `role_rates` fixes for `role`, or None when the role shares the rest."""
        return dict(self.role_rates).get(role)

    @property
    def splits_rate(self) -> bool:
        """Whether some roles end at another density than `1 / rate`."""
        return bool(self.role_rates) or self.attn_ratio != 1.0

    @property
    def density(self) -> float:
        return 1.0 / self.rate

    def group_shape(self, in_features: int) -> tuple[int, int]:
        """`[rows, cols]` of one group in a Linear with `in_features` inputs (block geometries;
        in `hybrid`, of its attention matrices; in `heads_bsp`, of its FFN matrices)."""
        if self.geometry in ("bsp", "hybrid", "heads_bsp"):
            return (1, math.ceil(in_features / self.col_blocks))
        if self.geometry == "irregular":
            return (1, 1)
        return self.block

    def identity(self) -> dict:
        """What a checkpoint must agree on to resume: the groups and the target."""
        d = asdict(self)
        keys = ("geometry", "rate", "block", "col_blocks", "roles", "scope", "balance")
        identity = {k: (list(d[k]) if isinstance(d[k], tuple) else d[k]) for k in keys}
        # absent when unset, so checkpoints from before these options resume
        if self.role_rates:
            identity["role_rates"] = dict(self.role_rates)
        if self.attn_ratio != 1.0:
            identity["attn_ratio"] = self.attn_ratio
        if self.qk != "same":
            identity["qk"] = self.qk
        if self.score != "norm":
            identity["score"] = self.score
        return identity


def _typed(key: str, value, kind: type):
    """`value` as `kind` (an int where an int is asked, any real number where a float is),
    or an error naming the key: a string or a list is never read as a number or a switch."""
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"prune.{key}={value!r} is not allowed: true or false")
        return value
    whole = kind is int and isinstance(value, float) and value.is_integer()
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (kind is int and isinstance(value, float) and not whole)
    ):
        wanted = "an integer" if kind is int else "a number"
        raise ConfigError(f"prune.{key}={value!r} is not allowed: {wanted}")
    return kind(value)


def _role_rates(value, roles: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    """`{role: rate}` (or its pairs) -> sorted `(role, rate)` pairs, each role one of the pruned
    `roles` and each rate a finite number >= 1."""
    if value is None:
        return ()
    pairs = value.items() if isinstance(value, dict) else value
    try:
        pairs = [(role, rate) for role, rate in pairs]
    except (TypeError, ValueError):
        raise ConfigError(
            f"prune.role_rates={value!r} is not allowed: a mapping of role to rate, "
            "e.g. {q: 1, k: 1}"
        ) from None
    checked = {}
    for role, rate in pairs:
        if role not in roles:
            raise ConfigError(
                f"prune.role_rates: {role!r} is not a pruned role; prune.roles: {list(roles)}"
            )
        rate = _typed(f"role_rates.{role}", rate, float)
        if not math.isfinite(rate) or rate < 1.0:
            raise ConfigError(
                f"prune.role_rates.{role}={rate!r} is not allowed: it must be finite and >= 1"
            )
        checked[role] = rate
    return tuple(sorted(checked.items(), key=lambda kv: ROLES.index(kv[0])))


def _choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"prune.{key}={value!r} is not allowed; choose one of {list(allowed)}")
