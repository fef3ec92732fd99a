from blockprune_pl.data.glue import GlueDataModule, load_split
from blockprune_pl.data.metrics import build_metrics

__all__ = ["GlueDataModule", "build_metrics", "load_split"]
