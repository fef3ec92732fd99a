"""Physically remove empty attention heads and FFN neurons: a smaller dense model.

A head contributes nothing when its value rows (weights and bias) or its attn_out columns are
all zero; an FFN neuron when its ffn_out column is zero, or its ffn_in row and bias are (GELU
and ReLU map 0 to 0). Dropping them leaves the logits unchanged. Per-layer widths differ, which
one HF config cannot describe, so `layer_widths` are saved beside the weights.
"""

from __future__ import annotations

import torch
from torch import nn

from blockprune_pl.errors import ConfigError
from blockprune_pl.pruning.layouts import find_prunable, layout_for


def _by_layer(model: nn.Module) -> dict[int, dict[str, tuple[str, nn.Linear]]]:
    layers: dict[int, dict] = {}
    for p in find_prunable(model, layout_for(model)):
        layers.setdefault(p.layer, {})[p.role] = (p.name, p.module)
    return layers


def _zero_rows(lin: nn.Linear, groups: int) -> torch.Tensor:
    rows = (lin.weight != 0).any(1) | ((lin.bias != 0) if lin.bias is not None else False)
    return ~rows.reshape(groups, -1).any(1)


# families whose attention adds a bias of a fixed number of heads, shared by all layers (MPNet's
# relative position bias): a layer cannot lose heads, so only FFN neurons are removed
HEADS_FIXED = ("mpnet",)


def kept_units(model: nn.Module) -> dict[int, dict[str, list[int]]]:
    """Per layer, the indices of heads and FFN neurons that still contribute."""
    heads_n = model.config.num_attention_heads
    heads_fixed = model.config.model_type in HEADS_FIXED
    kept = {}
    for layer, roles in _by_layer(model).items():
        if "v" not in roles or roles["ffn_in"][1].out_features != roles["ffn_out"][1].in_features:
            raise ConfigError(
                f"the compact form removes heads and FFN neurons across separate Linears; model "
                f"family {model.config.model_type!r} fuses q/k/v or gates its FFN, which it "
                "does not slice yet. Export with --format hf or --format gathered"
            )
        out = roles["attn_out"][1].weight
        dead_heads = _zero_rows(roles["v"][1], heads_n) | ~(out != 0).any(0).reshape(
            heads_n, -1
        ).any(1)
        ffn_out = roles["ffn_out"][1].weight
        dead_neurons = ~(ffn_out != 0).any(0) | _zero_rows(roles["ffn_in"][1], ffn_out.shape[1])
        # keep at least one of each (zeros) so no tensor is empty
        heads = [i for i in range(heads_n) if heads_fixed or not dead_heads[i]] or [0]
        neurons = [i for i in range(ffn_out.shape[1]) if not dead_neurons[i]] or [0]
        kept[layer] = {"heads": heads, "neurons": neurons}
    return kept


def _sliced(lin: nn.Linear, rows=None, cols=None) -> nn.Linear:
    weight = lin.weight.detach()
    bias = lin.bias.detach() if lin.bias is not None else None
    if rows is not None:
        weight, bias = weight[rows], (bias[rows] if bias is not None else None)
    if cols is not None:
        weight = weight[:, cols]
    new = nn.Linear(
        weight.shape[1],
        weight.shape[0],
        bias=bias is not None,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)


def compact(model: nn.Module) -> dict[str, dict[str, int]]:
    """Shrink `model` in place; returns `layer_widths` {layer: {"heads": n, "ffn": m}}."""
    head_size = model.config.hidden_size // model.config.num_attention_heads
    widths = {}
    # one scan: each layer's Linears are replaced only while that layer is processed
    layers = _by_layer(model)
    for layer, units in kept_units(model).items():
        roles = layers[layer]
        rows = torch.tensor([h * head_size + j for h in units["heads"] for j in range(head_size)])
        for role in ("q", "k", "v"):
            _replace(model, roles[role][0], _sliced(roles[role][1], rows=rows))
        _replace(model, roles["attn_out"][0], _sliced(roles["attn_out"][1], cols=rows))
        neurons = torch.tensor(units["neurons"])
        _replace(model, roles["ffn_in"][0], _sliced(roles["ffn_in"][1], rows=neurons))
        _replace(model, roles["ffn_out"][0], _sliced(roles["ffn_out"][1], cols=neurons))
        widths[str(layer)] = {"heads": len(units["heads"]), "ffn": len(units["neurons"])}
    return widths


def apply_widths(model: nn.Module, widths: dict[str, dict[str, int]]) -> nn.Module:
    """Give a freshly built full-width model the saved per-layer widths (weights to be loaded)."""
    head_size = model.config.hidden_size // model.config.num_attention_heads
    for layer, roles in _by_layer(model).items():
        w = widths[str(layer)]
        inner = w["heads"] * head_size
        for role in ("q", "k", "v"):
            _replace(model, roles[role][0], _sliced(roles[role][1], rows=torch.arange(inner)))
        _replace(
            model, roles["attn_out"][0], _sliced(roles["attn_out"][1], cols=torch.arange(inner))
        )
        ffn = torch.arange(w["ffn"])
        _replace(model, roles["ffn_in"][0], _sliced(roles["ffn_in"][1], rows=ffn))
        _replace(model, roles["ffn_out"][0], _sliced(roles["ffn_out"][1], cols=ffn))
    return model
