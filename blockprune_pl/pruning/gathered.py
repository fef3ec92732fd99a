"""Block-sparse Linears that store only kept blocks and compute with dense GEMMs.

For `bsp` (row segments) and `tiles`, group the kept blocks by column block j: the kept output
rows `R_j` of that column slice form a dense `(len(R_j), c)` matrix, so
`y^T = b + sum_j scatter_add(R_j, V_j @ x[..., cols_j]^T)`: one small dense GEMM per column
block, no sparse kernel, and no gather of the input (each column block is a contiguous slice).
"""

from __future__ import annotations

import time

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
        self.dense = False
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

    def densify(self) -> GatheredLinear:
        """Stored packed, run as one dense GEMM (where that is faster on this machine)."""
        self.dense = True
        self.register_buffer("dense_weight", self.to_dense(), persistent=False)
        return self

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
        if self.dense:
            return nn.functional.linear(x, self.dense_weight, self.bias)
        lead = x.shape[:-1]
        flat_t = x.reshape(-1, self.in_features).T
        tokens = flat_t.shape[1]
        # Accumulate the transposed output, (out, tokens): each kept row's contribution is then
        # one contiguous row of the result, and index_add_ over dim 0 copies whole rows (over
        # dim 1 it scatters single values and ran 2-5x slower than this on a CPU). One extra
        # row takes the padding of the batched form.
        out_t = flat_t.new_zeros(self.out_features + 1, tokens)
        if self._batched is None:
            self._batched = self._pack()
        if self._batched is not False:
            values, rows = self._batched
            parts = flat_t.reshape(self.blocks, self.col_width, tokens)
            out_t.index_add_(0, rows, torch.bmm(values, parts).reshape(-1, tokens))
        else:  # ragged last column block: one GEMM per block
            for j in range(self.blocks):
                rows = getattr(self, f"rows_{j}")
                part = flat_t[j * self.col_width : (j + 1) * self.col_width]
                out_t.index_add_(0, rows, getattr(self, f"values_{j}") @ part)
        # back to row-major: downstream kernels (flash attention, GELU, adds) are 2x slower or
        # fall back to the math path on a transposed layout
        out = out_t[: self.out_features].T.contiguous()
        if self.bias is not None:
            out += self.bias
        return out.reshape(*lead, self.out_features)

    def _load_from_state_dict(self, *args, **kwargs):
        self._batched = None  # new values: pack again at the next forward
        super()._load_from_state_dict(*args, **kwargs)

    def _pack(self):
        """Every column block's kept rows padded to the longest, for one batched GEMM and one
        index_add (padding rows point at the spare output row); False for a ragged last block."""
        if self.blocks * self.col_width != self.in_features:
            return False
        rows = [getattr(self, f"rows_{j}").long() for j in range(self.blocks)]
        longest = max(len(r) for r in rows)
        values = self.values_0.new_zeros(self.blocks, longest, self.col_width)
        index = torch.full((self.blocks, longest), self.out_features, device=rows[0].device)
        for j, r in enumerate(rows):
            values[j, : len(r)] = getattr(self, f"values_{j}")
            index[j, : len(r)] = r
        return values, index.flatten()

    def kept_weights(self) -> int:
        return sum(getattr(self, f"values_{j}").numel() for j in range(self.blocks))


def faster(linear: nn.Linear, gathered: GatheredLinear, tokens: int = 128, repeats: int = 5) -> str:
    """'gathered' or 'dense', whichever runs this layer faster here (median of `repeats`)."""
    x = torch.randn(tokens, linear.in_features, dtype=linear.weight.dtype)
    timings = {}
    with torch.inference_mode():
        for name, module in (("dense", linear), ("gathered", gathered)):
            module(x)
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                module(x)
                samples.append(time.perf_counter() - start)
            timings[name] = sorted(samples)[len(samples) // 2]
    return min(timings, key=timings.get)
