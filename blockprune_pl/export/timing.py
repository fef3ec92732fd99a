"""Every timing in the export package, with `torch.utils.benchmark` (its Timer sets torch's
thread count for the measurement and restores the caller's): forward latency for `bench`, and
the per-layer choice between one dense GEMM and the gathered form that the gathered export
records."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils import benchmark

from blockprune_pl.export.gathered import GatheredLinear


def measure(fn, threads: int, min_run_time: float, warmup: int = 3) -> benchmark.Measurement:
    """Time `fn()` after `warmup` untimed calls, with `threads` torch threads (the Timer sets
    them and restores the caller's): blocks of calls for at least `min_run_time` seconds; the
    Measurement has the per-call median and IQR."""
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    with torch.inference_mode():
        if warmup:
            timer.timeit(warmup)
        return timer.blocked_autorange(min_run_time=min_run_time)


def latency(
    model, batch: int, seq: int, threads: int, min_run_time: float, warmup: int, device=None
) -> dict:
    """Median and IQR (ms) of a forward pass on a `batch x seq` input on `device` (the Timer
    synchronises CUDA)."""
    ids = torch.randint(1000, 2000, (batch, seq), device=device)
    mask = torch.ones_like(ids)
    m = measure(lambda: model(input_ids=ids, attention_mask=mask), threads, min_run_time, warmup)
    calls = m.number_per_run * len(m.times)
    return {"median_ms": 1e3 * m.median, "iqr_ms": 1e3 * m.iqr, "calls": calls}


def layer_ms(module: nn.Module, x: torch.Tensor, threads: int, min_run_time: float) -> float:
    """Median time (ms) of `module(x)`."""
    return 1e3 * measure(lambda: module(x), threads, min_run_time).median


def dense_ranges(
    linear: nn.Linear,
    gathered: GatheredLinear,
    threads: int,
    token_counts=(128, 512, 4096),
    min_run_time: float = 0.05,
) -> tuple[list[tuple[float, float]], dict]:
    """The token-count ranges in which this layer runs faster as one dense GEMM than gathered on
    this machine with `threads` threads: each measured count stands for the sizes nearer to it
    than to its neighbours (on a log scale), from 0 below the smallest to infinity above the
    largest. Also the median timings (ms) they were decided on."""
    timings = {}
    for tokens in sorted(token_counts):
        x = torch.randn(tokens, linear.in_features, dtype=linear.weight.dtype)
        timings[tokens] = {
            name: layer_ms(module, x, threads, min_run_time)
            for name, module in (("dense", linear), ("gathered", gathered))
        }
    counts = sorted(timings)
    bounds = [0.0] + [math.sqrt(a * b) for a, b in zip(counts, counts[1:])] + [math.inf]
    ranges = []
    for k, tokens in enumerate(counts):
        if timings[tokens]["dense"] < timings[tokens]["gathered"]:
            if ranges and ranges[-1][1] == bounds[k]:  # extend the previous range
                ranges[-1] = (ranges[-1][0], bounds[k + 1])
            else:
                ranges.append((bounds[k], bounds[k + 1]))
    return ranges, timings
