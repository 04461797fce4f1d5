"""How much of a run is compilation: XLA programs compiled and seconds spent tracing, lowering and
compiling them, from ``jax.monitoring`` events.

``totals()`` is cumulative for the process; take it before and after a piece of work and subtract.
A program loaded from the persistent compilation cache (``use_persistent_cache``) is counted as
loaded, not compiled: JAX times the lookup as a backend compile and then reports the hit.
"""
from __future__ import annotations

import threading
from typing import NamedTuple

import jax
from jax import monitoring

_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_BACKEND = "/jax/core/compile/backend_compile_duration"
_CACHE_HIT = "/jax/compilation_cache/cache_hits"


class CompileTotals(NamedTuple):
    programs: int  # XLA programs compiled
    seconds: float  # tracing + lowering + compiling (or loading from the persistent cache)
    loaded: int = 0  # XLA programs loaded from the persistent compilation cache

    def __sub__(self, other: "CompileTotals") -> "CompileTotals":
        return CompileTotals(self.programs - other.programs, self.seconds - other.seconds,
                             self.loaded - other.loaded)


_lock = threading.Lock()
_totals = CompileTotals(0, 0.0)
_registered = False


def _listen(event: str, seconds: float, **_: object) -> None:
    global _totals
    if event in _COMPILE_EVENTS:
        with _lock:
            _totals = _totals._replace(programs=_totals.programs + (event == _BACKEND),
                                       seconds=_totals.seconds + seconds)


def _listen_hit(event: str, **_: object) -> None:
    global _totals
    if event == _CACHE_HIT:  # the lookup is also timed as a backend compile: count it as loaded
        with _lock:
            _totals = _totals._replace(programs=_totals.programs - 1,
                                       loaded=_totals.loaded + 1)


def totals() -> CompileTotals:
    """Compilation so far in this process (counting starts at the first call)."""
    global _registered
    with _lock:
        if not _registered:
            monitoring.register_event_duration_secs_listener(_listen)
            monitoring.register_event_listener(_listen_hit)
            _registered = True
        return _totals


def use_persistent_cache(path: str) -> None:
    """Keeps every compiled XLA program in ``path`` (JAX's persistent compilation cache, however
    small or quick to compile the program), so a later process with the same programs loads them
    instead of compiling: a resumed run, or a phase rerun, compiles only what is new to it.
    Call before the first compilation of the process."""
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # JAX's default also keeps XLA's GPU autotuning cache under ``path``, and that folder's name
    # enters every program's key: a copied or moved run directory (experiments.copy_run) then
    # loads nothing its original compiled (the smoke metacontroller phase: 202 programs compiled
    # again). The executables themselves are cached, so a hit skips autotuning anyway.
    jax.config.update("jax_persistent_cache_enable_xla_caches", "none")
