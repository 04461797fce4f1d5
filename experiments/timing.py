"""Timing for benchmarks: a warm-up call (compilation) apart from the best of timed repeats, the
programs compiled during those repeats, the device's facts and its peak compute and memory.
"""
from __future__ import annotations

import json
import math
import os
import platform
import resource
import time
from typing import Any, Callable, NamedTuple

import jax

from hrl_internal.utils import compile_stats

# Dense peak TFLOP/s by ``device_kind``: (float32, bfloat16), from the vendors' datasheets (SXM
# boards unless named). The H200 has the H100's compute and more memory.
PEAK_TFLOPS: dict[str, tuple[float, float]] = {
    "NVIDIA H100 80GB HBM3": (67.0, 989.0),
    "NVIDIA H100 PCIe": (51.0, 756.0),
    "NVIDIA H100 NVL": (60.0, 835.0),
    "NVIDIA H200": (67.0, 989.0),
    "NVIDIA A100-SXM4-80GB": (19.5, 312.0),
    "NVIDIA A100-SXM4-40GB": (19.5, 312.0),
}


class Timing(NamedTuple):
    compile_s: float  # tracing, lowering and compiling during the warm-up call
    first_call_s: float  # the warm-up call's wall time, compilation included
    seconds: float  # the best of the timed calls
    recompiles: int  # programs compiled during the timed calls: 0 when the warm-up covered them


def measure(fn: Callable[..., Any], *args: Any, repeats: int) -> Timing:
    """Times ``fn(*args)``, waiting for device results: a warm-up call, then ``repeats`` calls."""
    return measure_together([lambda: fn(*args)], repeats=repeats)[0]


def measure_together(fns: list[Callable[[], Any]], repeats: int) -> list[Timing]:
    """``measure`` for several calls compared with each other: every warm-up first, then each
    repeat calls them in turn, so that load from other processes falls on all of them alike."""
    def timed(fn):
        before, start = compile_stats.totals(), time.perf_counter()
        jax.block_until_ready(fn())
        return time.perf_counter() - start, compile_stats.totals() - before

    warm = [timed(fn) for fn in fns]
    best, recompiles = [math.inf] * len(fns), [0] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            seconds, compiled = timed(fn)
            best[i], recompiles[i] = min(best[i], seconds), recompiles[i] + compiled.programs
    return [Timing(compiled.seconds, first, b, n)
            for (first, compiled), b, n in zip(warm, best, recompiles)]


def row(name: str, batch: int | None, count: float, unit: str, timing: Timing,
        **fields: Any) -> dict[str, Any]:
    """A table row: ``count`` units done per timed call, as a rate; ``fields`` describe sizes."""
    return {"row": name, "batch": batch, "per_s": count / timing.seconds, "unit": unit,
            "compile_s": timing.compile_s, "first_call_s": timing.first_call_s,
            "seconds": timing.seconds, "recompiles_after_warmup": timing.recompiles, **fields}


def device_info() -> dict[str, Any]:
    """The fields every benchmark JSON starts with. The load average tells whether other
    processes shared the cores."""
    device = jax.devices()[0]
    return {"device": f"{device.platform}: {device.device_kind}", "platform": device.platform,
            "device_kind": device.device_kind, "cpu_count": os.cpu_count(),
            "machine": platform.machine(), "jax_version": jax.__version__,
            "load_average_1min_at_start": os.getloadavg()[0]}


def peak_flops(device_kind: str, override_tflops: float | None) -> tuple[float | None, str]:
    """Peak float32 FLOP/s of the device and where the figure comes from (None where unknown).

    The models run in float32, so the float32 figure is the one their FLOPs are measured against.
    """
    if override_tflops is not None:
        return override_tflops * 1e12, f"--peak_tflops={override_tflops:g}"
    if device_kind in PEAK_TFLOPS:
        fp32, bf16 = PEAK_TFLOPS[device_kind]
        return fp32 * 1e12, (f"{device_kind}: {fp32:g} TFLOP/s dense float32 (datasheet; its "
                             f"bfloat16 peak is {bf16:g}; XLA may run float32 matmuls as TF32, "
                             f"whose higher peak would give a lower MFU)")
    return None, f"no known peak for device kind {device_kind!r}; pass --peak_tflops"


def peak_host_mib() -> float:
    """The process's peak resident memory so far (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_device_bytes() -> int | None:
    """Peak bytes in use on the first accelerator; None where the backend keeps no such count
    (the CPU)."""
    stats = jax.devices()[0].memory_stats()
    return None if not stats else stats.get("peak_bytes_in_use")


def _cell(value: Any, width: int, spec: str = "") -> str:
    text = "-" if value is None else format(value, spec)
    return f"{text:>{width}}"


def _extra(value: Any) -> str:
    return format(value, ".3g") if isinstance(value, float) else str(value)


def format_table(rows: list[dict[str, Any]], extras: tuple[str, ...]) -> str:
    """One line per row; the ``extras`` fields a row has are appended as ``name=value``."""
    width = max(len(r["row"]) for r in rows) + 2
    lines = [f"{'row':<{width}}{'batch':>7}{'per second':>14}  {'unit':<14}{'compile s':>10}"
             f"{'recompiles':>11}"]
    for r in rows:
        extra = "  ".join(f"{k}={_extra(r[k])}" for k in extras if k in r)
        lines.append(f"{r['row']:<{width}}{_cell(r['batch'], 7)}{_cell(r['per_s'], 14, ',.1f')}"
                     f"  {r['unit']:<14}{_cell(r['compile_s'], 10, '.2f')}"
                     f"{_cell(r.get('recompiles_after_warmup'), 11)}  {extra}".rstrip())
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
