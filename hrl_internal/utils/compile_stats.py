"""How much of a run is compilation: XLA programs compiled and seconds spent tracing, lowering and
compiling them, from ``jax.monitoring`` events.

``totals()`` is cumulative for the process; take it before and after a piece of work and subtract.
A program loaded from the persistent compilation cache is not compiled, so it is not counted.
"""
from __future__ import annotations

import threading
from typing import NamedTuple

from jax import monitoring

_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_BACKEND = "/jax/core/compile/backend_compile_duration"


class CompileTotals(NamedTuple):
    programs: int  # XLA programs compiled
    seconds: float  # tracing + lowering + compiling

    def __sub__(self, other: "CompileTotals") -> "CompileTotals":
        return CompileTotals(self.programs - other.programs, self.seconds - other.seconds)


_lock = threading.Lock()
_totals = CompileTotals(0, 0.0)
_registered = False


def _listen(event: str, seconds: float, **_: object) -> None:
    global _totals
    if event in _COMPILE_EVENTS:
        with _lock:
            _totals = CompileTotals(_totals.programs + (event == _BACKEND),
                                    _totals.seconds + seconds)


def totals() -> CompileTotals:
    """Compilation so far in this process (counting starts at the first call)."""
    global _registered
    with _lock:
        if not _registered:
            monitoring.register_event_duration_secs_listener(_listen)
            _registered = True
        return _totals
