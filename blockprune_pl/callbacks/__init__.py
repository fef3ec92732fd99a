from blockprune_pl.callbacks.block_norms import BlockNormLogger
from blockprune_pl.callbacks.pruning import PhasePlan, PruningCallback

__all__ = ["BlockNormLogger", "PhasePlan", "PruningCallback"]
