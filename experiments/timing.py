"""Timing for benchmarks: the first call (compilation included) apart from the best of repeats."""
from __future__ import annotations

import time

import jax


def time_call(fn, *args, repeats: int) -> tuple[float, float]:
    """``(first_call_seconds, best_seconds)`` of ``fn(*args)``, waiting for device results."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return first, best
