"""Block-structured pruning in pure torch: no Lightning, Hydra or OmegaConf imports here."""

from blockprune_pl.pruning.layouts import ROLES, Layout, find_prunable, layout_for, register_layout
from blockprune_pl.pruning.pruner import BlockPruner
from blockprune_pl.pruning.spec import GEOMETRIES, PruneSpec
from blockprune_pl.pruning.stats import pruning_stats

__all__ = [
    "ROLES",
    "GEOMETRIES",
    "BlockPruner",
    "Layout",
    "PruneSpec",
    "find_prunable",
    "layout_for",
    "pruning_stats",
    "register_layout",
]
