"""How a rate is shared between the group sets: the same density everywhere (the paper), a rate
fixed per role (`role_rates`), or the attention kept `attn_ratio` times as dense as the FFN.
Whatever the split, the prunable weights as a whole keep `1 / rate`."""

from __future__ import annotations

import math

from blockprune_pl.errors import ConfigError
from blockprune_pl.pruning.groups import CoupledGroups
from blockprune_pl.pruning.layouts import HEAD_ROLES, NEURON_ROLES
from blockprune_pl.pruning.spec import PruneSpec


def set_roles(g) -> tuple[str, ...]:
    """The roles a group set spans: a matrix's (several for a fused Linear), a head's or a
    neuron's coupled roles."""
    if isinstance(g, CoupledGroups):
        qk = ("q", "k")
        return {"heads": HEAD_ROLES, "neurons": NEURON_ROLES, "qk_dims": qk, "qk_heads": qk}[g.kind]
    return tuple(g.role.split("+"))


def final_densities(spec: PruneSpec, groups) -> list[float]:
    """Per group set, its density at the end of pruning: `spec.density`, or the split that
    `role_rates` or `attn_ratio` asks for."""
    if spec.role_rates:
        return _role_rate_densities(spec, groups)
    if spec.attn_ratio != 1.0:
        return _attn_ratio_densities(spec, groups)
    return [spec.density] * len(groups)


def _role_rate_densities(spec: PruneSpec, groups) -> list[float]:
    """The density `role_rates` fixes for each set's roles, the roles left free sharing the
    rest. The roles of one set are pruned together, so they must have one rate."""
    fixed = []
    for g in groups:
        rates = {spec.role_rate(role) for role in set_roles(g)}
        if len(rates) > 1:
            raise ConfigError(
                f"prune.role_rates={dict(spec.role_rates)}: {g.label} prunes the roles "
                f"{list(set_roles(g))} together (prune.geometry={spec.geometry}), so give them "
                "one rate, or none"
            )
        rate = rates.pop()
        fixed.append(None if rate is None else 1.0 / rate)
    free = _free_density(spec, groups, fixed)
    return [free if d is None else d for d in fixed]


def _free_density(spec: PruneSpec, groups, fixed: list[float | None]) -> float:
    """The final density of the roles `role_rates` leaves free, so that the prunable weights
    as a whole keep `spec.density`."""
    sizes = [float(g.sizes().sum()) for g in groups]
    free_total = sum(n for n, d in zip(sizes, fixed) if d is None)
    kept_fixed = sum(n * d for n, d in zip(sizes, fixed) if d is not None)
    named = dict(spec.role_rates)
    if not free_total:
        raise ConfigError(
            f"prune.role_rates={named} names every pruned role; leave at least one out to "
            f"take up the rest of prune.rate={spec.rate:g}"
        )
    free = (spec.density * sum(sizes) - kept_fixed) / free_total
    if not 0.0 < free <= 1.0:
        free_roles = sorted(
            {r for g, d in zip(groups, fixed) if d is None for r in set_roles(g)},
            key=list(HEAD_ROLES + NEURON_ROLES).index,
        )
        need = f"rate {1 / free:.3g}" if free > 0 else "to keep nothing or less"
        raise ConfigError(
            f"prune.role_rates={named} with prune.rate={spec.rate:g}: the other roles "
            f"{free_roles} would need {need}; choose role rates that leave them a rate >= 1 "
            "and some weights"
        )
    return free


def _attn_ratio_densities(spec: PruneSpec, groups) -> list[float]:
    """The attention sets at `attn_ratio` times the FFN's density, capped at dense. The
    attention then keeps whole groups (whole heads in `heads_bsp`, where 5.3 heads would be cut
    to 5), and the FFN makes up the rest, so that the rate reached is the rate asked."""
    ratio = spec.attn_ratio
    is_attn = []
    for g in groups:
        roles = set(set_roles(g))
        attention = roles <= set(HEAD_ROLES)
        if not (attention or roles <= set(NEURON_ROLES)):
            raise ConfigError(
                f"prune.attn_ratio={ratio:g}: {g.label} prunes attention and FFN roles "
                f"together ({sorted(roles)}), so they cannot have two densities; use "
                "prune.attn_ratio=1"
            )
        is_attn.append(attention)
    sizes = [float(g.sizes().sum()) for g in groups]
    attn = sum(n for n, a in zip(sizes, is_attn) if a)
    ffn = sum(n for n, a in zip(sizes, is_attn) if not a)
    if not attn or not ffn:
        raise ConfigError(
            f"prune.attn_ratio={ratio:g} needs attention and FFN roles among prune.roles; "
            f"got {list(spec.roles)}"
        )
    kept = spec.density * (attn + ffn)
    # capped at dense; and with a ratio below 1, the FFN capped at dense takes what it can
    attn_density = min(1.0, max(ratio * kept / (ratio * attn + ffn), (kept - ffn) / attn))
    out = [_whole_groups(g, attn_density) if a else None for g, a in zip(groups, is_attn)]
    kept_attn = sum(n * d for n, d in zip(sizes, out) if d is not None)
    ffn_density = (kept - kept_attn) / ffn
    if not 0.0 < ffn_density <= 1.0:
        need = "to keep nothing or less" if ffn_density <= 0 else "more than all its weights"
        raise ConfigError(
            f"prune.attn_ratio={ratio:g} with prune.rate={spec.rate:g}: the FFN would need "
            f"{need} once the attention keeps whole groups; choose a ratio closer to 1"
        )
    return [ffn_density if d is None else d for d in out]


def _whole_groups(g, density: float) -> float:
    """`density` moved to the nearest whole number of groups when the set's groups are all one
    size (heads, head dimensions, segments), as the prune itself will keep them."""
    sizes = g.sizes()
    if not bool((sizes == sizes[0]).all()):
        return density
    count = math.ceil(density * len(sizes) - 0.5)  # the nearest count, ties to the lower
    return max(count, 1) / len(sizes)
