"""Which groups survive: exact-rate selection by norm, and the gradual (cubic) density schedule."""

from __future__ import annotations

import torch
from torch import Tensor


def group_scores(norms: Tensor, sizes: Tensor) -> Tensor:
    """Rank by RMS (norm / sqrt(size)) so smaller edge blocks, and groups of different sizes
    under a global ranking, compete fairly; for equal sizes this is the plain norm order."""
    return norms.detach().float() / sizes.to(norms.device).float().sqrt()


def keep_top(scores: Tensor, sizes: Tensor, density: float, alive: Tensor | None = None) -> Tensor:
    """Keep the highest-scoring groups whose sizes add up closest to `density * sum(sizes)`.

    `scores, sizes: (G,)` -> `keep: (G,) bool`. At least one group is kept; groups not `alive`
    (already pruned) are never brought back, so gradual pruning is monotone.
    """
    sizes = sizes.to(scores.device)
    alive = torch.ones_like(scores, dtype=torch.bool) if alive is None else alive.to(scores.device)
    ranked = torch.where(alive, scores, torch.full_like(scores, float("-inf")))
    order = torch.argsort(ranked, descending=True, stable=True)
    kept_after = torch.cat([sizes.new_zeros(1), torch.cumsum(sizes[order], 0)])
    target = density * float(sizes.sum())
    count = int(torch.argmin((kept_after.double() - target).abs()))
    count = min(max(count, 1), int(alive.sum()))
    keep = torch.zeros_like(alive)
    keep[order[:count]] = True
    return keep


def keep_top_per_column(
    scores: Tensor, sizes: Tensor, grid: tuple[int, int], density: float, alive: Tensor
) -> Tensor:
    """`keep_top` inside each column of a `(R, C)` block grid (scores flattened row-major), so
    every column block keeps the same number of row blocks: `(R * C,)` bool."""
    rows, cols = grid
    scores, sizes, alive = (t.reshape(rows, cols) for t in (scores, sizes, alive))
    keep = torch.stack(
        [keep_top(scores[:, c], sizes[:, c], density, alive[:, c]) for c in range(cols)], 1
    )
    return keep.flatten()


def keep_top_per_section(
    scores: Tensor, sizes: Tensor, sections: int, density: float, alive: Tensor
) -> Tensor:
    """Keep as many groups, give or take one, in each of `sections` equal, consecutive runs of
    groups (e.g. the dimensions of each attention head), so that the kept sizes add up closest
    to `density * sum(sizes)`: `(G,)` bool. Groups are taken round by round, every run's best
    first, then every run's second best, ..., the higher scores first within a round, so the
    runs that keep one more are those whose next group scores highest. Every run keeps at least
    one group; groups not `alive` are never brought back."""
    sizes = sizes.to(scores.device)
    alive = alive.to(scores.device)
    ranked = torch.where(alive, scores, torch.full_like(scores, float("-inf")))
    within = torch.argsort(ranked.reshape(sections, -1), dim=1, descending=True, stable=True)
    rank = torch.empty_like(within)
    rank.scatter_(1, within, torch.arange(within.shape[1], device=scores.device).expand_as(within))
    by_score = torch.argsort(ranked, descending=True, stable=True)
    order = by_score[torch.argsort(rank.flatten()[by_score], stable=True)]
    order = order[alive[order]]
    kept_after = torch.cat([sizes.new_zeros(1), torch.cumsum(sizes[order], 0)])
    count = int(torch.argmin((kept_after.double() - density * float(sizes.sum())).abs()))
    keep = torch.zeros_like(alive)
    keep[order[: max(count, sections)]] = True
    return keep


def cubic_density(step: int, start: int, end: int, final_density: float) -> float:
    """Zhu & Gupta's gradual schedule: density falls from 1 to `final_density` as a cubic over
    [start, end], fast at first while the network can still recover."""
    if end <= start:
        return final_density
    t = min(max((step - start) / (end - start), 0.0), 1.0)
    return final_density + (1.0 - final_density) * (1.0 - t) ** 3
