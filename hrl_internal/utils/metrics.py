"""Training curves as JSON lines: ``{"step": s, "time": seconds, <metric>: value, ...}`` per line."""
from __future__ import annotations

import json
import os
import time
from typing import Any


class MetricsWriter:
    """Appends one JSON line per logging step to ``path``.

    ``truncate_after=step`` drops lines logged after ``step`` (a resumed run rewrites what the
    interrupted one logged past its last checkpoint, so the file matches an uninterrupted run).
    """

    def __init__(self, path: str, truncate_after: int | None = None):
        self.path = path
        self.start = time.perf_counter()
        if truncate_after is not None and os.path.exists(path):
            kept = [r for r in self.read() if r["step"] <= truncate_after]
            with open(path, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in kept)

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        record = {"step": int(step), "time": round(time.perf_counter() - self.start, 3),
                  **{k: float(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            return [json.loads(line) for line in f if line.strip()]
