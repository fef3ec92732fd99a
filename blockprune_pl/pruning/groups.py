"""Groups: the units the penalty and the masks act on.

Two kinds share one interface (`norms`, `grad_dots`, `expand`, `sizes`):
- `BlockGroups`: one weight `(out, in)` cut into `[r, c]` blocks; edge blocks are smaller.
- `CoupledGroups`: group i spans slices of several tensors (an FFN neuron, an attention head).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def grid_shape(shape: tuple[int, int], block: tuple[int, int]) -> tuple[int, int]:
    """`(out, in)`, `[r, c]` -> `(ceil(out/r), ceil(in/c))`."""
    return math.ceil(shape[0] / block[0]), math.ceil(shape[1] / block[1])


def to_blocks(weight: Tensor, block: tuple[int, int]) -> Tensor:
    """`weight: (out, in)` -> `(R, C, r, c)`, zero-padded at the bottom/right edge."""
    (r, c), (R, C) = block, grid_shape(tuple(weight.shape), block)
    padded = F.pad(weight, (0, C * c - weight.shape[1], 0, R * r - weight.shape[0]))
    return padded.reshape(R, r, C, c).permute(0, 2, 1, 3)


def from_blocks(blocks: Tensor, shape: tuple[int, int]) -> Tensor:
    """Inverse of `to_blocks`: `(R, C, r, c)` -> `(out, in)`, padding cut away."""
    R, C, r, c = blocks.shape
    return blocks.permute(0, 2, 1, 3).reshape(R * r, C * c)[: shape[0], : shape[1]]


def block_norms(weight: Tensor, block: tuple[int, int]) -> Tensor:
    """`weight: (out, in)` -> `norms: (ceil(out/r), ceil(in/c))`, L2 norm of each block."""
    return torch.linalg.vector_norm(to_blocks(weight, block), dim=(2, 3))


def expand_blocks(values: Tensor, block: tuple[int, int], shape: tuple[int, int]) -> Tensor:
    """`values: (R, C)` -> `(out, in)`: every element takes its block's value."""
    full = values.repeat_interleave(block[0], 0).repeat_interleave(block[1], 1)
    return full[: shape[0], : shape[1]]


class BlockGroups:
    """One prunable weight cut into blocks; group g is block `divmod(g, C)`."""

    sections = 1  # a prune ranks all of its blocks together

    def __init__(self, label: str, layer: int, role: str, name: str, weight: nn.Parameter, block):
        self.label, self.layer, self.role, self.kind = label, layer, role, role
        self.name, self.weight, self.block = name, weight, tuple(block)
        self.shape = tuple(weight.shape)
        self.grid = grid_shape(self.shape, self.block)
        ones = torch.ones(self.shape, dtype=torch.float32)
        self._sizes = block_norms(ones, self.block).square().round().long().flatten()

    @property
    def params(self) -> dict[str, nn.Parameter]:
        return {self.name: self.weight}

    def __len__(self) -> int:
        return self.grid[0] * self.grid[1]

    def sizes(self) -> Tensor:
        """`(G,)`: prunable weights in each group (edge blocks hold fewer)."""
        return self._sizes

    def norms(self) -> Tensor:
        """`(G,)`: L2 norm of each group; differentiable."""
        return block_norms(self.weight, self.block).flatten()

    def grad_dots(self) -> Tensor | None:
        """`(G,)`: sum of w * dL/dw over each group, the first-order change of the loss when the
        group is removed; None before any gradient."""
        if self.weight.grad is None:
            return None
        product = self.weight.detach() * self.weight.grad
        return to_blocks(product, self.block).sum(dim=(2, 3)).flatten()

    def expand(self, values: Tensor) -> dict[str, Tensor]:
        """`values: (G,)` -> per parameter, a tensor of its shape holding its group's value."""
        grid_values = values.reshape(self.grid).to(self.weight.device)
        return {self.name: expand_blocks(grid_values, self.block, self.shape)}


@dataclass
class Member:
    """Slices of one tensor in a coupled group: group i is `offset + [i*width:(i+1)*width]`
    along `dim`. Several members may share a tensor at different offsets (a fused q/k/v
    Linear: one member per third; a gated FFN input: one per half)."""

    name: str
    param: nn.Parameter
    dim: int
    width: int
    prunable: bool = True  # biases ride along with their group but do not count as prunable
    offset: int = 0

    def span(self, count: int, tensor: Tensor | None = None) -> Tensor:
        """The part of the parameter (or of `tensor`, shaped like it, e.g. its gradient) that
        `count` groups cover."""
        whole = self.param if tensor is None else tensor
        return whole.narrow(self.dim, self.offset, count * self.width)


class CoupledGroups:
    """`count` groups, group i spanning slice i of every member (e.g. one head, one neuron, or
    one head dimension of q and k)."""

    def __init__(
        self,
        label: str,
        layer: int,
        kind: str,
        members: list[Member],
        count: int,
        sections: int = 1,
    ):
        self.label, self.layer, self.kind, self.members, self.count = (
            label,
            layer,
            kind,
            members,
            count,
        )
        # a prune keeps the same share inside each of `sections` equal runs of groups (the
        # dimensions of each head)
        self.sections = sections
        self.role = kind
        covered: dict[str, int] = {}
        for m in members:
            covered[m.name] = covered.get(m.name, 0) + count * m.width
            if m.offset + count * m.width > m.param.shape[m.dim]:
                raise ValueError(
                    f"{m.name}: dim {m.dim} has size {m.param.shape[m.dim]}, too small for "
                    f"{count} groups x {m.width} from offset {m.offset}"
                )
        for m in members:
            if covered[m.name] != m.param.shape[m.dim]:
                raise ValueError(
                    f"{m.name}: dim {m.dim} has size {m.param.shape[m.dim]}, but its slices "
                    f"cover {covered[m.name]} ({count} groups)"
                )
        per_group = [m.span(count).numel() // count for m in members if m.prunable]
        self._sizes = torch.full((count,), sum(per_group), dtype=torch.long)

    @property
    def params(self) -> dict[str, nn.Parameter]:
        return {m.name: m.param for m in self.members}

    def __len__(self) -> int:
        return self.count

    def sizes(self) -> Tensor:
        return self._sizes

    def _grouped(self, m: Member, tensor: Tensor | None = None) -> Tensor:
        """`(count, rest)` view of a member (or of `tensor`, shaped like its parameter, e.g. its
        gradient): its slices as rows."""
        return m.span(self.count, tensor).movedim(m.dim, 0).reshape(self.count, -1)

    def grad_dots(self) -> Tensor | None:
        # the biases count too: a cut group takes its bias slice with it
        terms = [
            (self._grouped(m).detach() * self._grouped(m, m.param.grad)).sum(1)
            for m in self.members
            if m.param.grad is not None
        ]
        return torch.stack(terms).sum(0) if terms else None

    def norms(self) -> Tensor:
        # one norm over the concatenated slices: vector_norm has a zero subgradient at zero,
        # where sqrt(sum of squares) would give NaN
        return torch.linalg.vector_norm(
            torch.cat([self._grouped(m) for m in self.members], 1), dim=1
        )

    def expand(self, values: Tensor) -> dict[str, Tensor]:
        out = {}
        for m in self.members:
            per_index = values.to(m.param.device).repeat_interleave(m.width)
            shape = [1] * m.param.dim()
            shape[m.dim] = -1
            if m.offset == 0 and self.count * m.width == m.param.shape[m.dim]:
                out[m.name] = per_index.reshape(shape).expand_as(m.param)
                continue
            full = out.setdefault(m.name, torch.ones_like(m.param, dtype=values.dtype))
            region = full.narrow(m.dim, m.offset, self.count * m.width)
            region.copy_(per_index.reshape(shape).expand_as(region))
        return out
