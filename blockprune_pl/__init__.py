"""blockprune_pl: hardware-friendly block-structured pruning of HF encoders on GLUE."""

__version__ = "0.1.0"


def load_pruned(path, int8: bool = True):
    """A ready `nn.Module` from a folder written by `python -m blockprune_pl.export`."""
    from blockprune_pl.export import load_pruned as _load

    return _load(path, int8)
