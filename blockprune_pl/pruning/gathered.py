"""Block-sparse Linears that store only kept blocks and compute with dense GEMMs.

For `bsp` (row segments) and `tiles`, group the kept blocks by column block j: the kept output
rows `R_j` of that column slice form a dense `(len(R_j), c)` matrix, so
`y^T = b + sum_j scatter_add(R_j, V_j @ x[..., cols_j]^T)`: one small dense GEMM per column
block, no sparse kernel, and no gather of the input (each column block is a contiguous slice).
"""

from __future__ import annotations

import math
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
        self.dense_from = math.inf  # token count from which one dense GEMM is faster here
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

    def densify(self, from_tokens: float = 0) -> GatheredLinear:
        """Stored packed, but run as one dense GEMM for inputs of `from_tokens` tokens or more
        (where that is faster on this machine); `math.inf`: always gathered."""
        self.dense_from = from_tokens
        if math.isfinite(from_tokens):
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
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)
        if flat.shape[0] >= self.dense_from:
            return nn.functional.linear(x, self.dense_weight, self.bias)
        if self._batched is None:
            self._batched = self._pack()
        if flat.shape[0] <= self.chunk:
            out = self._gathered(flat.T).T.contiguous()
        else:
            # a chunk of tokens at a time: the per-block products stay in cache (all 4,096
            # tokens of a batch of 32 at once made them memory-bound, slower than dense)
            out = flat.new_empty(flat.shape[0], self.out_features)
            for start in range(0, flat.shape[0], self.chunk):
                out[start : start + self.chunk] = self._gathered(
                    flat[start : start + self.chunk].T
                ).T
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
        if self._batched is not False:
            values, rows = self._batched
            parts = flat_t.reshape(self.blocks, self.col_width, tokens)
            out_t.index_add_(0, rows, torch.bmm(values, parts).reshape(-1, tokens))
        else:  # ragged last column block: one GEMM per block
            for j in range(self.blocks):
                rows = getattr(self, f"rows_{j}")
                part = flat_t[j * self.col_width : (j + 1) * self.col_width]
                out_t.index_add_(0, rows, getattr(self, f"values_{j}") @ part)
        return out_t[: self.out_features]

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


def median_ms(module: nn.Module, x: Tensor, repeats: int) -> float:
    with torch.inference_mode():
        module(x)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            module(x)
            samples.append(time.perf_counter() - start)
    return 1e3 * sorted(samples)[len(samples) // 2]


def dense_from(
    linear: nn.Linear, gathered: GatheredLinear, token_counts=(128, 512, 4096), repeats: int = 5
) -> tuple[float, dict]:
    """From how many tokens this layer runs faster as one dense GEMM than gathered, on this
    machine: `math.inf` if gathered wins at the largest count, 0 if dense wins at all of them,
    else the geometric middle between the last count gathered wins and the first of the dense
    wins that follow. Also the timings (ms) it was decided on."""
    timings = {}
    for tokens in sorted(token_counts):
        x = torch.randn(tokens, linear.in_features, dtype=linear.weight.dtype)
        timings[tokens] = {
            "dense": median_ms(linear, x, repeats),
            "gathered": median_ms(gathered, x, repeats),
        }
    counts = sorted(timings)
    dense_wins = [timings[t]["dense"] < timings[t]["gathered"] for t in counts]
    if not dense_wins[-1]:
        return math.inf, timings
    first = len(counts) - 1
    while first > 0 and dense_wins[first - 1]:
        first -= 1
    threshold = 0 if first == 0 else math.sqrt(counts[first - 1] * counts[first])
    return threshold, timings
