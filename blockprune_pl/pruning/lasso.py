"""The reweighted group Lasso: penalty, alpha refresh, and the proximal (soft-threshold) step."""

from __future__ import annotations

import torch
from torch import Tensor


def reweighted_alpha(norms: Tensor, eps: float) -> Tensor:
    """alpha_g = 1 / (||W_g|| + eps): a constant between refreshes, so small groups get pushed
    harder (Candes et al.'s reweighted L1, applied to groups)."""
    return 1.0 / (norms.detach() + eps)


def group_lasso(norms: Tensor, alpha: Tensor, lam: float) -> Tensor:
    """lam * sum_g alpha_g * ||W_g||_2."""
    return lam * (alpha * norms).sum()


def shrink_factors(norms: Tensor, alpha: Tensor, threshold: float) -> Tensor:
    """Group soft-threshold: the proximal operator of `threshold * alpha_g * ||W_g||` scales each
    group by max(0, 1 - threshold * alpha_g / ||W_g||); a zero group stays zero."""
    norms = norms.detach()
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    factors = (1.0 - threshold * alpha / safe).clamp_min(0.0)
    return torch.where(norms > 0, factors, torch.zeros_like(factors))
