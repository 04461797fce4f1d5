"""Training curves as JSON lines: ``{"step": s, "time": seconds, <metric>: value, ...}`` per line.

Every phase logs through ``MetricsWriter``. When the optional ``tensorboardX`` is installed
(``pip install -e .[tensorboard]``), each line also goes to TensorBoard event files beside the
JSON lines (``tensorboard --logdir DIR`` then shows every phase); without it nothing changes.
"""
from __future__ import annotations

import json
import os
import time
import weakref
from typing import Any

from hrl_internal.utils import sharding


def tensorboard_writer(logdir: str) -> Any | None:
    """A ``tensorboardX.SummaryWriter`` for ``logdir``, or None when tensorboardX is absent.

    Imported here, not at the top: it is an optional extra, and reading metrics needs none of it.
    """
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(logdir=logdir)


class MetricsWriter:
    """Appends one JSON line per logging step to ``path``.

    ``truncate_after=step`` drops lines logged after ``step`` (a resumed run rewrites what the
    interrupted one logged past its last checkpoint, so the file matches an uninterrupted run).
    TensorBoard event files are append-only: there a resumed run's repeated steps show twice; the
    JSON lines are the record. In a multi-process run only process 0 writes
    (``sharding.writes_files``); every process reads.
    """

    def __init__(self, path: str, truncate_after: int | None = None):
        self.path = path
        self.start = time.perf_counter()
        self._board: Any = None  # opened on the first write: a reader never creates event files
        self._board_opened = False
        self.active = sharding.writes_files()
        if self.active and truncate_after is not None and os.path.exists(path):
            kept = [r for r in self.read() if r["step"] <= truncate_after]
            with open(path, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in kept)

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.active:
            return
        values = {k: float(v) for k, v in metrics.items()}
        record = {"step": int(step), "time": round(time.perf_counter() - self.start, 3), **values}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        board = self._tensorboard()
        if board is not None:
            for name, value in values.items():
                board.add_scalar(name, value, int(step))
            board.flush()  # the phases never close writers; a crash must not lose the curve

    def read(self) -> list[dict[str, Any]]:
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def _tensorboard(self) -> Any | None:
        if not self._board_opened:
            self._board_opened = True
            self._board = tensorboard_writer(os.path.dirname(os.path.abspath(self.path)))
            if self._board is not None:
                # Its events pass through a queue drained by a daemon thread: closing (when this
                # writer goes, or at exit) writes what is still queued.
                weakref.finalize(self, self._board.close)
        return self._board
