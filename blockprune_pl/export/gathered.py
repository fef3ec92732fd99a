"""Block-sparse Linears that store only kept blocks and compute with dense GEMMs.

For `bsp` (row segments) and `tiles`, group the kept blocks by column block j: the kept output
rows `R_j` of that column slice form a dense `(len(R_j), c)` matrix, so
`y^T = b + sum_j scatter_add(R_j, V_j @ x[..., cols_j]^T)`: one small dense GEMM per column
block, no sparse kernel, and no gather of the input (each column block is a contiguous slice).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class GatheredLinear(nn.Module):
    """Drop-in for an `nn.Linear` whose zeros come in whole `[r, c]` blocks (any `r`)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        col_width: int,
        rows: list[Tensor],
        values: list[Tensor],
        bias: Tensor | None,
    ):
        super().__init__()
        self.in_features, self.out_features, self.col_width = in_features, out_features, col_width
        for j, (r, v) in enumerate(zip(rows, values)):
            self.register_buffer(f"rows_{j}", r.to(torch.int32))
            self.register_buffer(f"values_{j}", v.contiguous())
        self.blocks = len(rows)
        self.bias = (
            nn.Parameter(bias.detach().clone(), requires_grad=False) if bias is not None else None
        )
        # per thread count, the [lo, hi) token counts for which one dense GEMM measured faster
        # on this machine (empty: always gathered)
        self.dense_plan: dict[int, list[tuple[float, float]]] = {}
        self.chunk = 512  # tokens per pass (measured: 256-512 best from 512 to 4,096 tokens)
        self._batched = None  # built at the first forward (after the weights were loaded)

    def to_dense(self) -> Tensor:
        """`(out, in)` weight with the kept blocks in place and zeros elsewhere."""
        weight = torch.zeros(
            self.out_features,
            self.in_features,
            dtype=self.values_0.dtype,
            device=self.values_0.device,
        )
        for j in range(self.blocks):
            cols = slice(j * self.col_width, (j + 1) * self.col_width)
            weight[getattr(self, f"rows_{j}").long(), cols] = getattr(self, f"values_{j}")
        return weight

    def densify(self, plan: dict | None = None) -> GatheredLinear:
        """Stored packed, but run as one dense GEMM where that is faster on this machine: `plan`
        maps a thread count to the `[lo, hi)` token-count ranges to run dense with (the entry
        nearest to torch's current thread count applies); None: always dense."""
        plan = {1: [(0, math.inf)]} if plan is None else plan
        self.dense_plan = {
            int(t): [(float(lo), float(hi)) for lo, hi in r] for t, r in plan.items()
        }
        if any(self.dense_plan.values()):
            self.register_buffer("dense_weight", self.to_dense(), persistent=False)
        return self

    def runs_dense(self, tokens: int) -> bool:
        if not self.dense_plan:
            return False
        threads = torch.get_num_threads()
        nearest = min(self.dense_plan, key=lambda t: (abs(t - threads), t))
        return any(lo <= tokens < hi for lo, hi in self.dense_plan[nearest])

    @classmethod
    def from_linear(cls, linear: nn.Linear, col_width: int) -> GatheredLinear:
        w = linear.weight.detach()
        rows, values = [], []
        for start in range(0, w.shape[1], col_width):
            block = w[:, start : start + col_width]
            kept = (block != 0).any(1).nonzero().flatten()
            rows.append(kept)
            values.append(block[kept])
        return cls(w.shape[1], w.shape[0], col_width, rows, values, linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)
        if self.runs_dense(flat.shape[0]):
            return nn.functional.linear(x, self.dense_weight, self.bias)
        if self._batched is None:
            self._batched = self._pack()
        if torch.onnx.is_in_onnx_export():
            out = self._exported(flat)
        else:
            # a chunk of tokens at a time: the per-block products stay in cache (all 4,096
            # tokens of a batch of 32 at once made them memory-bound, slower than dense)
            out = flat.new_empty(flat.shape[0], self.out_features)
            for start in range(0, flat.shape[0], self.chunk):
                chunk = flat[start : start + self.chunk]
                out[start : start + self.chunk] = self._gathered(chunk.T).T
        if self.bias is not None:
            out += self.bias
        return out.reshape(*lead, self.out_features)

    def _gathered(self, flat_t: Tensor) -> Tensor:
        """`(out, tokens)` from `(in, tokens)`. The transposed output is accumulated: each kept
        row's contribution is then one contiguous row of the result, and index_add_ over dim 0
        copies whole rows (over dim 1 it scatters single values and ran 2-5x slower than this on
        a CPU). The caller turns it back to row-major: downstream kernels (flash attention,
        GELU, adds) are 2x slower or fall back to the math path on a transposed layout."""
        tokens = flat_t.shape[1]
        out_t = flat_t.new_zeros(self.out_features + 1, tokens)  # + a row for the padding
        full = self.in_features // self.col_width
        parts = flat_t[: full * self.col_width].reshape(full, self.col_width, tokens)
        for blocks, values, rows in self._batched:
            if blocks is None:  # every full-width block, in order: the view itself
                group = parts
            elif blocks == "last":  # the narrower last block
                group = flat_t[full * self.col_width :].unsqueeze(0)
            else:
                group = parts.index_select(0, blocks)
            out_t.index_add_(0, rows, torch.bmm(values, group).reshape(-1, tokens))
        return out_t[: self.out_features]

    def _exported(self, flat: Tensor) -> Tensor:
        """`(tokens, out)` from `(tokens, in)` as an ONNX graph: per column block one 2-D MatMul
        with the kept rows' weights as its second input (a constant that a quantizer can turn
        into int8), then one scatter-add of every product into its output column. The trace
        records shapes as constants, so all tokens go in one pass, and the exporter writes
        index_add as a ScatterElements without reduction="add" (an overwrite of the columns
        that several column blocks share): hence scatter_add."""
        products, index = [], []
        for j in range(self.blocks):
            rows = getattr(self, f"rows_{j}")
            if rows.numel():
                start = j * self.col_width
                values = getattr(self, f"values_{j}")
                products.append(flat[:, start : start + values.shape[1]] @ values.T)
                index.append(rows.long())
        out = flat.new_zeros(flat.shape[0], self.out_features)
        if not products:
            return out
        products, index = torch.cat(products, 1), torch.cat(index)
        return out.scatter_add(1, index.unsqueeze(0).expand_as(products), products)

    def _load_from_state_dict(self, *args, **kwargs):
        self._batched = None  # new values: pack again at the next forward
        super()._load_from_state_dict(*args, **kwargs)

    def _pack(self) -> list[tuple[Tensor | str | None, Tensor, Tensor]]:
        """Column blocks in groups of similar kept-row counts, each group one batched GEMM and
        one index_add: `(block ids, None for all full blocks in order or "last" for a narrower
        last block; values padded to the group's longest block; the output row of each padded
        row)`; padding rows point at the
        spare output row. Padding every block to the longest of the layer costs 1.4x the kept
        multiply-adds on a bsp-pruned MiniLM and 2.9x with 32x32 tiles; each extra group costs
        a call and a copy of its input columns, so a layer is split only past 1.5x."""
        counts = [int(getattr(self, f"rows_{j}").numel()) for j in range(self.blocks)]
        full = self.in_features // self.col_width
        if full and full * max(counts[:full]) <= 1.5 * sum(counts[:full]):
            # measured end to end: with a third of padding (bsp on MiniLM) one group ran faster
            # than any split; with 2.9x (32x32 tiles) the split ran 1.2x faster
            groups = [list(range(full))]
        else:
            groups = _group_by_count(counts[:full], call_cost=4096 // self.col_width)
        if full < self.blocks:
            groups.append([full])  # a narrower last block runs on its own
        packed = []
        for ids in groups:
            longest = max(counts[j] for j in ids)
            width = getattr(self, f"values_{ids[0]}").shape[1]
            values = self.values_0.new_zeros(len(ids), longest, width)
            index = torch.full((len(ids), longest), self.out_features, device=values.device)
            for k, j in enumerate(ids):
                values[k, : counts[j]] = getattr(self, f"values_{j}")
                index[k, : counts[j]] = getattr(self, f"rows_{j}").long()
            if ids == list(range(full)):
                blocks = None
            elif ids == [full]:
                blocks = "last"
            else:
                blocks = torch.tensor(ids, device=values.device)
            packed.append((blocks, values, index.flatten()))
        return packed

    def kept_weights(self) -> int:
        return sum(getattr(self, f"values_{j}").numel() for j in range(self.blocks))


def _group_by_count(counts: list[int], call_cost: int) -> list[list[int]]:
    """Block ids in groups that minimise padded rows + `call_cost` rows per group: blocks sorted
    by count, cut into consecutive runs (dynamic programme over the cut points)."""
    if not counts:
        return []
    order = sorted(range(len(counts)), key=lambda j: -counts[j])
    best = [0.0] + [math.inf] * len(order)  # best[i]: cost of the first i sorted blocks
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for start in range(end):
            cost = best[start] + (end - start) * counts[order[start]] + call_cost
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], len(order)
    while end:
        groups.append(sorted(order[cut[end] : end]))
        end = cut[end]
    return groups[::-1]
