"""Timing for benchmarks: the first call (compilation included) apart from the best of repeats."""
from __future__ import annotations

import json
import os
import platform
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


def device_info() -> dict:
    """The fields every benchmark JSON starts with."""
    device = jax.devices()[0]
    return {"device": f"{device.platform}: {device.device_kind}", "cpu_count": os.cpu_count(),
            "machine": platform.machine(), "jax_version": jax.__version__}


def write_report(report: dict, path: str, header: str) -> None:
    """Prints ``header`` and a table of ``report["rows"]``, and writes ``report`` as JSON."""
    rows = report["rows"]
    width = max(len(r["row"]) for r in rows) + 2
    print(f"device {report['device']}, {report['cpu_count']} cores, jax {report['jax_version']}, "
          f"{header}")
    print(f"{'row':<{width}}{'batch':>7}{'per second':>14}  {'unit':<13}{'compile s':>10}")
    for r in rows:
        print(f"{r['row']:<{width}}{r['batch']:>7}{r['per_s']:>14,.1f}  {r['unit']:<13}"
              f"{r['compile_s']:>10.2f}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {path}")
