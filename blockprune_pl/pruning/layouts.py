"""Which module of an encoder family plays which role: q, k, v, attn_out, ffn_in, ffn_out."""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from blockprune_pl.errors import ConfigError

ROLES = ("q", "k", "v", "attn_out", "ffn_in", "ffn_out")
# the roles that couple: an attention head spans rows of q, k, v and columns of attn_out; an
# FFN neuron a row of ffn_in and a column of ffn_out
HEAD_ROLES = ("q", "k", "v", "attn_out")
NEURON_ROLES = ("ffn_in", "ffn_out")


@dataclass(frozen=True)
class Layout:
    """Per role, a regex on the dotted module name whose first group is the layer index."""

    family: str
    patterns: dict[str, str]


@dataclass
class PrunableLinear:
    name: str  # dotted module name; its weight is `{name}.weight`
    layer: int
    role: str  # one role, or fused roles joined by "+" (e.g. "q+k+v": ModernBERT's Wqkv)
    module: nn.Linear

    @property
    def parts(self) -> tuple[str, ...]:
        """The roles this Linear holds, as row blocks of equal height in this order."""
        return tuple(self.role.split("+"))

    @property
    def in_ffn(self) -> bool:
        """A Linear of the FFN (its neurons couple), else of the attention (its heads do)."""
        return self.parts[0] in NEURON_ROLES


_LAYOUTS: dict[str, Layout] = {}


def register_layout(family: str, patterns: dict[str, str]) -> Layout:
    """Register (or replace) the layout of a model family, keyed by `config.model_type`."""
    unknown = set(patterns) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)} for family {family!r}; roles: {ROLES}")
    layout = Layout(family, dict(patterns))
    _LAYOUTS[family] = layout
    return layout


def known_families() -> list[str]:
    return sorted(_LAYOUTS)


def layout_for(model_or_family) -> Layout:
    """The layout of a family (`config.model_type`). Given a model whose family has none
    registered, its roles are found from its own modules (`discover.py`), printed once and
    registered."""
    if isinstance(model_or_family, nn.Module):
        model = model_or_family
        family = model.config.model_type
        if family not in _LAYOUTS:
            from blockprune_pl.pruning.discover import discover_patterns

            layout = register_layout(family, discover_patterns(model))
            print(f"pruning layout found for model family {family!r}: {layout.patterns}")
        return _LAYOUTS[family]
    family = model_or_family
    if family not in _LAYOUTS:
        raise KeyError(
            f"no pruning layout for model family {family!r}; known families: {known_families()}. "
            "Register one with blockprune_pl.pruning.register_layout(family, {role: regex})."
        )
    return _LAYOUTS[family]


_BERT = {
    "q": r"layer\.(\d+)\.attention\.self\.query$",
    "k": r"layer\.(\d+)\.attention\.self\.key$",
    "v": r"layer\.(\d+)\.attention\.self\.value$",
    "attn_out": r"layer\.(\d+)\.attention\.output\.dense$",
    "ffn_in": r"layer\.(\d+)\.intermediate\.dense$",
    "ffn_out": r"layer\.(\d+)\.output\.dense$",
}
for _family in ("bert", "roberta", "xlm-roberta", "electra"):
    register_layout(_family, _BERT)
register_layout(
    "distilbert",
    {
        "q": r"layer\.(\d+)\.attention\.q_lin$",
        "k": r"layer\.(\d+)\.attention\.k_lin$",
        "v": r"layer\.(\d+)\.attention\.v_lin$",
        "attn_out": r"layer\.(\d+)\.attention\.out_lin$",
        "ffn_in": r"layer\.(\d+)\.ffn\.lin1$",
        "ffn_out": r"layer\.(\d+)\.ffn\.lin2$",
    },
)


def find_prunable(model: nn.Module, layout: Layout, roles=ROLES) -> list[PrunableLinear]:
    """Every nn.Linear of `model` whose name matches a role of `layout`, by layer then role.
    A Linear matched by several roles (a fused projection) is one entry whose role joins them
    in ROLES order, e.g. "q+k+v"; it is pruned with all of its roles or none."""
    compiled = {role: re.compile(pattern) for role, pattern in layout.patterns.items()}
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        matched = [(r, p.search(name)) for r, p in compiled.items()]
        matched = [(r, m) for r, m in matched if m]
        if not matched:
            continue
        parts = [r for r in ROLES if r in dict(matched)]
        chosen = [r for r in parts if r in roles]
        if not chosen:
            continue
        if len(chosen) != len(parts):
            raise ConfigError(
                f"prune.roles={list(roles)}: {name} holds the roles {parts} in one Linear, so "
                "they are pruned together; list all of them or none"
            )
        found.append(PrunableLinear(name, int(matched[0][1].group(1)), "+".join(parts), module))
    if not found:
        raise ValueError(
            f"layout {layout.family!r} matches no nn.Linear of this model (roles {list(roles)}); "
            "check model.config.model_type or register a layout for this family"
        )
    order = {role: i for i, role in enumerate(ROLES)}
    return sorted(found, key=lambda p: (p.layer, order[p.parts[0]]))


def row_parts(prunables: list[PrunableLinear]) -> dict[str, int]:
    """Per prunable Linear, how many roles its rows hold in equal blocks: 3 for a fused
    q/k/v, 2 for a gated FFN input (input and gate rows, twice as many as ffn_out reads)."""
    ffn_out_width = {p.layer: p.module.in_features for p in prunables if p.role == "ffn_out"}
    parts = {}
    for p in prunables:
        gated = p.role == "ffn_in" and p.module.out_features == 2 * ffn_out_width.get(p.layer, -1)
        parts[p.name] = 2 if gated else len(p.parts)
    return parts
