"""Scoring a run's rows: step-weighted means over every row, a fixed-shape chunk per call (one
compiled program scores them all), and the per-step action metric of a base model.
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np

from hrl_internal.data import packing
from hrl_internal.models import backbone
from hrl_internal.training import pretrain

EVAL_ROWS = 256  # held-out rows scored after every call (the full set at the end)


def evaluate_in_chunks(evaluate_chunk: Any, rows: packing.PackedRows, keys: tuple[str, ...],
                       chunk: int = EVAL_ROWS) -> tuple[dict[str, float], list[Any]]:
    """Step-weighted means of ``keys`` over all ``rows``, ``chunk`` rows per call.

    Every call sees the same shape (one compilation): the last chunk is padded with repeats of its
    final row whose mask is cleared, so they count for nothing. ``evaluate_chunk(part)`` returns
    ``(metrics with "num_steps", extra)``; the extras come back per chunk, padding included.
    """
    totals = dict.fromkeys(keys, 0.0)
    extras = []
    steps = 0.0
    for start in range(0, rows.num_rows, chunk):
        metrics, extra = evaluate_chunk(chunk_of(rows, start, chunk))
        n = float(metrics["num_steps"])
        for k in keys:
            totals[k] += float(metrics[k]) * n
        steps += n
        extras.append(extra)
    return {k: v / max(steps, 1.0) for k, v in totals.items()}, extras


def chunk_of(rows: Any, start: int, chunk: int) -> Any:
    """Rows ``start .. start + chunk``, padded past the end with repeats of the last row whose
    mask is cleared: every chunk has one shape, so one compiled program scores them all."""
    index = np.minimum(np.arange(start, start + chunk), rows.num_rows - 1)
    part = jax.tree.map(lambda a: a[index], rows)
    valid = np.arange(start, start + chunk) < rows.num_rows
    return part._replace(mask=part.mask & valid[:, None])


def evaluate_rows(params: Any, rows: packing.PackedRows | packing.DenseRows, model, env
                  ) -> dict[str, float]:
    """Step-weighted held-out action NLL and accuracy (ant: mean squared error) over ``rows``."""
    means, _ = evaluate_in_chunks(
        lambda part: (pretrain.evaluate(params, part, model=model, env=env), None), rows,
        ("action_nll", quality_key(model)), chunk=min(EVAL_ROWS, rows.num_rows))
    return means


def quality_key(model: Any) -> str:
    """The per-step action metric: accuracy (categorical actions) or mean squared error."""
    return "action_mse" if backbone.is_continuous(model) else "action_accuracy"
