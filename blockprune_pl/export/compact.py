"""Physically remove empty attention heads and FFN neurons: a smaller dense model.

A head contributes nothing when its value rows (weights and bias) or its attn_out columns are
all zero; an FFN neuron when its ffn_out column is zero, or its ffn_in row and bias are (GELU
and ReLU map 0 to 0; in a gated FFN, its input row or its gate row). Fused q/k/v Linears and
gated FFN inputs are sliced in each of their row blocks. Dropping them leaves the logits
unchanged. Per-layer widths differ, which one HF config cannot describe, so `layer_widths` are
saved beside the weights.
"""

from __future__ import annotations

import torch
from torch import nn

from blockprune_pl.pruning.layouts import HEAD_ROLES, find_prunable, layout_for, row_parts


def _by_layer(model: nn.Module) -> dict[int, dict[str, tuple[str, nn.Linear, int]]]:
    """Per layer and role: (module name, Linear, how many roles its rows hold). A fused q/k/v
    Linear is listed as "q+k+v"; a gated FFN input holds its input and gate rows (2)."""
    prunables = find_prunable(model, layout_for(model))
    parts = row_parts(prunables)
    layers: dict[int, dict] = {}
    for p in prunables:
        layers.setdefault(p.layer, {})[p.role] = (p.name, p.module, parts[p.name])
    return layers


def _attention_inputs(roles: dict) -> list[tuple[str, nn.Linear, int]]:
    return [roles["q+k+v"]] if "q+k+v" in roles else [roles[r] for r in HEAD_ROLES[:-1]]


def _rows(lin: nn.Linear, parts: int, index: torch.Tensor) -> torch.Tensor:
    """Rows `index` of each of the `parts` equal row blocks of `lin`."""
    height = lin.out_features // parts
    return torch.cat([part * height + index for part in range(parts)])


def _zero_rows(lin: nn.Linear, groups: int, parts: int = 1, part=None) -> torch.Tensor:
    """`(groups,)`: groups whose rows (weights and bias) are all zero, in every row block or
    in block `part` only."""
    rows = (lin.weight != 0).any(1) | ((lin.bias != 0) if lin.bias is not None else False)
    blocks = rows.reshape(parts, groups, -1)
    if part is not None:
        return ~blocks[part].any(1)
    return ~blocks.any(2).all(0)


# families whose attention adds a bias of a fixed number of heads, shared by all layers (MPNet's
# relative position bias): a layer cannot lose heads, so only FFN neurons are removed
HEADS_FIXED = ("mpnet",)


def kept_units(model: nn.Module, layers: dict | None = None) -> dict[int, dict[str, list[int]]]:
    """Per layer, the indices of heads and FFN neurons that still contribute (`layers`: the
    model's `_by_layer`, when the caller has it)."""
    heads_n = model.config.num_attention_heads
    heads_fixed = model.config.model_type in HEADS_FIXED
    kept = {}
    for layer, roles in (layers or _by_layer(model)).items():
        _, value, parts = roles["q+k+v"] if "q+k+v" in roles else roles["v"]
        out = roles["attn_out"][1].weight
        dead_heads = _zero_rows(value, heads_n, parts, part=parts - 1) | ~(out != 0).any(0).reshape(
            heads_n, -1
        ).any(1)
        ffn_out = roles["ffn_out"][1].weight
        _, ffn_in, ffn_parts = roles["ffn_in"]
        # a gated neuron is silent when its input row or its gate row is zero (act(0) = 0)
        dead_neurons = ~(ffn_out != 0).any(0) | _zero_rows(ffn_in, ffn_out.shape[1], ffn_parts)
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


# per-head projections of the relative positions (DeBERTa-v2 with share_att_key=False): their
# rows follow the kept heads as q and k do
_POSITION_PROJECTIONS = ("pos_key_proj", "pos_query_proj")


def _set_head_count(attention: nn.Module, heads: int, head_size: int) -> None:
    """Attention modules that reshape by a stored head count (DeBERTa's num_attention_heads)
    must see the layer's own count, or the kept rows are split into the wrong heads."""
    for attr in ("num_attention_heads", "num_heads", "n_heads"):
        if isinstance(getattr(attention, attr, None), int):
            setattr(attention, attr, heads)
    if isinstance(getattr(attention, "all_head_size", None), int):
        attention.all_head_size = heads * head_size


def _resize(model: nn.Module, roles: dict, head_rows: torch.Tensor, neurons: torch.Tensor):
    head_size = model.config.hidden_size // model.config.num_attention_heads
    inputs = _attention_inputs(roles)
    for name, lin, parts in inputs:
        _replace(model, name, _sliced(lin, rows=_rows(lin, parts, head_rows)))
    attention = model.get_submodule(inputs[0][0].rpartition(".")[0])
    for extra in _POSITION_PROJECTIONS:
        lin = getattr(attention, extra, None)
        if isinstance(lin, nn.Linear):
            setattr(attention, extra, _sliced(lin, rows=head_rows))
    _set_head_count(attention, len(head_rows) // head_size, head_size)
    _replace(model, roles["attn_out"][0], _sliced(roles["attn_out"][1], cols=head_rows))
    name, lin, parts = roles["ffn_in"]
    _replace(model, name, _sliced(lin, rows=_rows(lin, parts, neurons)))
    _replace(model, roles["ffn_out"][0], _sliced(roles["ffn_out"][1], cols=neurons))


def compact(model: nn.Module, neurons: bool = True) -> dict[str, dict[str, int]]:
    """Shrink `model` in place; returns `layer_widths` {layer: {"heads": n, "ffn": m}}.
    `neurons=False` removes heads only: the FFN keeps its width, so the column blocks of a
    row-segment FFN stay where its groups were (heads_bsp's gathered form)."""
    head_size = model.config.hidden_size // model.config.num_attention_heads
    widths = {}
    # one scan: each layer's Linears are replaced only while that layer is processed
    layers = _by_layer(model)
    for layer, units in kept_units(model, layers).items():
        if not neurons:
            units["neurons"] = list(range(layers[layer]["ffn_out"][1].in_features))
        rows = torch.tensor([h * head_size + j for h in units["heads"] for j in range(head_size)])
        _resize(model, layers[layer], rows, torch.tensor(units["neurons"]))
        widths[str(layer)] = {"heads": len(units["heads"]), "ffn": len(units["neurons"])}
    return widths


def apply_widths(model: nn.Module, widths: dict[str, dict[str, int]]) -> nn.Module:
    """Give a freshly built full-width model the saved per-layer widths (weights to be loaded)."""
    head_size = model.config.hidden_size // model.config.num_attention_heads
    for layer, roles in _by_layer(model).items():
        w = widths[str(layer)]
        _resize(model, roles, torch.arange(w["heads"] * head_size), torch.arange(w["ffn"]))
    return model
