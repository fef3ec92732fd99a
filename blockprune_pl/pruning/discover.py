"""Find the roles of an encoder family that has no registered layout, from its own modules:
per-layer `nn.Linear`s named like the query/key/value projections, the attention output and the
FFN in and out, the layer index read from the module path."""

from __future__ import annotations

import re

from torch import nn

from blockprune_pl.errors import ConfigError

# the last part(s) of a per-layer module's name (after the layer index), per role
_NAMES = {
    "q": ("query", "q_lin", "q_proj", "query_proj", "q"),
    "k": ("key", "k_lin", "k_proj", "key_proj", "k"),
    "v": ("value", "v_lin", "v_proj", "value_proj", "v"),
    "attn_out": ("attention.output.dense", "out_lin", "o_proj", "out_proj", "attn.o", "o"),
    "ffn_in": ("intermediate.dense", "lin1", "fc1", "up_proj", "wi", "intermediate_dense"),
    "ffn_out": ("output.dense", "lin2", "fc2", "down_proj", "wo", "output_dense"),
}
# one Linear holding q, k and v as row thirds (ModernBERT's Wqkv): all three roles match it
_FUSED_QKV = ("wqkv", "qkv", "qkv_proj", "query_key_value")
# fused forms whose row layout is not three equal thirds of an nn.Linear
_FUSED_OTHER = ("in_proj", "c_attn")
_DECODERS = (
    "gpt2",
    "gpt_neo",
    "gpt_neox",
    "gptj",
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "phi",
    "phi3",
    "falcon",
    "opt",
    "bloom",
    "mpt",
)
_LAYER = re.compile(r"^(.*?)\.(\d+)\.(.+)$")


class LayoutError(ConfigError):
    """The roles of a model cannot be decided; the message names the modules seen."""


def refuse_unprunable(model_type: str) -> None:
    """Families this method cannot prune, with the reason."""
    if model_type in _DECODERS:
        raise LayoutError(
            f"model family {model_type!r} is a decoder (causal language model); blockprune_pl "
            "prunes encoders (BERT, RoBERTa, DeBERTa, ELECTRA, MPNet, ...): pass an encoder"
        )
    if model_type == "albert":
        raise LayoutError(
            "model family 'albert' shares one set of weights across all its layers, so a "
            "per-layer block mask cannot be applied: pass an encoder with its own weights per "
            "layer"
        )


def _role_of(suffix: str) -> str | None:
    suffix = suffix.lower()
    for role, names in _NAMES.items():
        if any(suffix == n or suffix.endswith("." + n) for n in names):
            # "output.dense" (or ModernBERT's "Wo") under an attention block is the attention
            # output, not the FFN's
            if role == "ffn_out" and ("attention" in suffix or "attn" in suffix.split(".")):
                return "attn_out"
            return role
    return None


def discover_patterns(model: nn.Module) -> dict[str, str]:
    """`{role: regex}` for `register_layout`, read off the model's per-layer Linears."""
    refuse_unprunable(getattr(model.config, "model_type", ""))
    per_role: dict[str, set[tuple[str, str]]] = {r: set() for r in _NAMES}
    seen = []
    for name, module in model.named_modules():
        match = _LAYER.match(name)
        if not isinstance(module, nn.Linear) or not match:
            continue
        prefix, _, suffix = match.groups()
        seen.append(name)
        last = suffix.split(".")[-1].lower()
        if last in _FUSED_OTHER or (last in _FUSED_QKV and module.out_features % 3):
            raise LayoutError(
                f"{name} is a fused projection whose rows are not q, k and v in three equal "
                "thirds; its groups could straddle roles. Give the roles of separate Linears "
                "with model.layout, or pass an encoder with separate q/k/v projections"
            )
        if last in _FUSED_QKV:  # one Linear for q, k and v: all three roles point at it
            for role in ("q", "k", "v"):
                per_role[role].add((prefix, suffix))
            continue
        role = _role_of(suffix)
        if role is not None:
            per_role[role].add((prefix, suffix))
    missing = [r for r, found in per_role.items() if not found]
    ambiguous = {r: sorted(found) for r, found in per_role.items() if len(found) > 1}
    if missing or ambiguous or not seen:
        layer0 = [n for n in seen if _LAYER.match(n).group(2) == "0"] or seen[:12]
        raise LayoutError(
            "could not decide the pruning roles of model family "
            f"{getattr(model.config, 'model_type', '?')!r}: "
            + (f"no module for {missing}; " if missing else "")
            + (f"several candidates {ambiguous}; " if ambiguous else "")
            + f"per-layer Linears seen: {layer0}. Give them with model.layout="
            "{q: <regex with the layer index as group 1>, k: ..., v: ..., attn_out: ..., "
            "ffn_in: ..., ffn_out: ...}"
        )
    return {
        role: rf"{re.escape(prefix)}\.(\d+)\.{re.escape(suffix)}$"
        for role, ((prefix, suffix),) in per_role.items()
    }
