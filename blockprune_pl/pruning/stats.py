"""Measured, not configured: achieved rate, densities, kept heads/neurons, parameter counts."""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from blockprune_pl.pruning.layouts import HEAD_ROLES, PrunableLinear


@torch.no_grad()
def pruning_stats(model: nn.Module, prunables: list[PrunableLinear], num_heads: int) -> dict:
    """Counts on the tensors of `model`; `achieved_rate` = prunable / non-zero prunable weights."""
    total = kept = 0
    per_role, per_layer = defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0])
    by_layer: dict[int, dict[str, torch.Tensor]] = defaultdict(dict)
    for p in prunables:
        w = p.module.weight
        nonzero = int(torch.count_nonzero(w))
        total, kept = total + w.numel(), kept + nonzero
        for table, key in ((per_role, p.role), (per_layer, p.layer)):
            table[key][0] += nonzero
            table[key][1] += w.numel()
        by_layer[p.layer][p.role] = w
    heads = neurons = heads_total = neurons_total = 0
    for roles in by_layer.values():
        if all(r in roles for r in HEAD_ROLES):
            alive = (
                sum(
                    _rows_alive(roles[r]).reshape(num_heads, -1).any(1).int()
                    for r in HEAD_ROLES[:-1]
                )
                + _rows_alive(roles["attn_out"].T).reshape(num_heads, -1).any(1).int()
            )
            heads, heads_total = heads + int((alive > 0).sum()), heads_total + num_heads
        if "ffn_in" in roles and "ffn_out" in roles:
            width = roles["ffn_out"].shape[1]
            # a gated FFN input holds an input row and a gate row per neuron
            rows_in = _rows_alive(roles["ffn_in"]).reshape(-1, width).any(0)
            alive = rows_in | _rows_alive(roles["ffn_out"].T)
            neurons, neurons_total = neurons + int(alive.sum()), neurons_total + alive.numel()
    all_params = sum(p.numel() for p in model.parameters())
    nonzero_params = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    return {
        "prunable_params": total,
        "kept_prunable_params": kept,
        "achieved_rate": total / kept if kept else float("inf"),
        "density": kept / total if total else 1.0,
        "density_per_role": {r: k / n for r, (k, n) in per_role.items()},
        "density_per_layer": {str(layer): k / n for layer, (k, n) in sorted(per_layer.items())},
        "kept_heads": heads,
        "total_heads": heads_total,
        "kept_neurons": neurons,
        "total_neurons": neurons_total,
        "total_params": all_params,
        "nonzero_params": nonzero_params,
    }


def _rows_alive(w: torch.Tensor) -> torch.Tensor:
    return (w != 0).any(dim=1)
