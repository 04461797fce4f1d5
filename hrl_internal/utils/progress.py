"""Progress lines for long work: done/total, rate, ETA and the latest metrics, at most every few s."""
from __future__ import annotations

import sys
import time
from typing import Any, Callable


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """Prints ``[name] done/total unit (pct)  rate unit/s  ETA h:mm:ss  metric value ...``.

    ``update`` is cheap to call every step: it prints only when ``every_s`` seconds have passed, or
    when the work is finished. The rate counts from the first update, so compilation in the first
    call inflates neither rate nor ETA for long.
    """

    def __init__(self, name: str, total: int, unit: str = "steps", every_s: float = 5.0,
                 write: Callable[[str], Any] | None = None, start: int = 0,
                 also_per_s: dict[str, float] | None = None):
        """``also_per_s={"tokens": n}`` also prints ``n`` times the rate as ``tokens/s``."""
        self.name, self.total, self.unit, self.every_s = name, total, unit, every_s
        self.also_per_s = also_per_s or {}
        self.write = write or (lambda line: print(line, file=sys.stdout, flush=True))
        self.start_time = time.perf_counter()
        self.start_done = start
        self.last_print = float("-inf")
        self.rate = 0.0

    def update(self, done: int, **metrics: Any) -> None:
        now = time.perf_counter()
        elapsed = now - self.start_time
        if elapsed > 0 and done > self.start_done:
            self.rate = (done - self.start_done) / elapsed
        if now - self.last_print < self.every_s and done < self.total:
            return
        self.last_print = now
        eta = (self.total - done) / self.rate if self.rate > 0 else float("nan")
        parts = [f"[{self.name}] {done}/{self.total} {self.unit} ({100.0 * done / max(self.total, 1):.1f}%)",
                 f"{self.rate:,.1f} {self.unit}/s",
                 *[f"{self.rate * scale:,.0f} {name}/s" for name, scale in self.also_per_s.items()],
                 f"ETA {format_duration(eta) if eta == eta else '?'}"]
        parts += [f"{k} {_fmt(v)}" for k, v in metrics.items()]
        self.write("  ".join(parts))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
