"""blockprune_pl: hardware-friendly block-structured pruning of HF encoders on GLUE."""

__version__ = "0.1.0"
