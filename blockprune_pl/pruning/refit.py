"""Refit at the cut: after a hard prune, solve for the kept weights of each Linear so that its
output on calibration inputs stays as close as it can to the unpruned output.

For one output row w (the weights before the cut) and kept columns K, with H = X^T X over the
calibration tokens X, the least-squares fit is w'_K = (H_KK)^-1 (H w)_K, w' = 0 elsewhere (the
exact form of SparseGPT's and OBS's weight update for a fixed mask). Pure torch.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor, nn


class GramCollector:
    """Accumulates H = X^T X of the inputs of some Linears over the forwards it sees, counting
    only the tokens that `token_mask` (set before each forward, `(batch, seq)`) marks real.
    Linears fed the same tensor (q, k and v) share one product."""

    def __init__(self, modules: dict[str, nn.Linear]):
        self.modules = modules
        self.grams: dict[str, Tensor] = {}
        self.token_mask: Tensor | None = None
        self._last: tuple[Tensor, Tensor | None, Tensor] | None = None  # input, mask, its gram

    def _gram(self, x: Tensor) -> Tensor:
        if self._last is not None and self._last[0] is x and self._last[1] is self.token_mask:
            return self._last[2]
        flat = x.detach().reshape(-1, x.shape[-1])
        if self.token_mask is not None:
            flat = flat[self.token_mask.reshape(-1).to(flat.device).bool()]
        flat = flat.double()
        gram = flat.T @ flat
        self._last = (x, self.token_mask, gram)
        return gram

    def _hook(self, name: str):
        def hook(module, args):
            gram = self._gram(args[0])
            self.grams[name] = self.grams[name] + gram if name in self.grams else gram

        return hook

    @contextmanager
    def collecting(self):
        handles = [m.register_forward_pre_hook(self._hook(n)) for n, m in self.modules.items()]
        try:
            yield self
        finally:
            self._last = None  # no input tensor kept alive after the forwards
            for handle in handles:
                handle.remove()


@torch.no_grad()
def input_grams(model: nn.Module, modules: dict[str, nn.Linear], batches) -> dict[str, Tensor]:
    """X^T X of each of `modules`' inputs over `batches` (dicts of model inputs; labels are
    dropped, padding tokens not counted), with dropout off; the model's mode is restored."""
    collector = GramCollector(modules)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with collector.collecting():
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
            collector.token_mask = batch.get("attention_mask")
            model(**batch)
    model.train(was_training)
    return collector.grams


@torch.no_grad()
def refit_rows(weight: Tensor, mask: Tensor, gram: Tensor, damp: float = 0.01) -> Tensor:
    """The refit weight: `weight (out, in)` before the cut, `mask (out, in)` bool of kept
    weights, `gram (in, in)` = X^T X. `damp` adds that share of the mean diagonal to the
    diagonal, so columns the calibration never excites stay put instead of blowing up. Rows
    with the same kept columns share one solve (a bsp matrix has at most 2^col_blocks kinds)."""
    w = weight.detach().double()
    h = gram.to(w.device, torch.float64)
    eye = torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
    h = h + damp * h.diagonal().mean().clamp_min(1e-12) * eye
    target = w @ h  # row r: (H w_r)^T
    out = torch.zeros_like(w)
    patterns, which = torch.unique(mask, dim=0, return_inverse=True)
    for p, pattern in enumerate(patterns):
        kept = pattern.nonzero().squeeze(1)
        rows = (which == p).nonzero().squeeze(1)
        if len(kept) == 0:
            continue
        h_kk = h.index_select(0, kept).index_select(1, kept)
        rhs = target.index_select(0, rows).index_select(1, kept)
        out[rows.unsqueeze(1), kept.unsqueeze(0)] = torch.linalg.solve(h_kk, rhs.T).T
    return out.to(weight.dtype)
