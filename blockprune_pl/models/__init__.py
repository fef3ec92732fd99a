from blockprune_pl.models.encoder import build_model, load_tokenizer, resolve_name_or_path
from blockprune_pl.models.module import GlueModule

__all__ = ["GlueModule", "build_model", "load_tokenizer", "resolve_name_or_path"]
