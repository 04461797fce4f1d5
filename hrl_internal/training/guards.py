"""Numerical faults in training: detect a non-finite loss or gradient, name the step, and either
stop (the default) or skip the offending updates.

Every training loop (pretrain, metacontroller, RL) flags each update inside its jitted scan with
``step_flags`` and reduces the per-update metrics with ``summarise``; the Python loop around the
jitted call then calls ``check`` before logging or checkpointing. Skipping is done by the
optimiser itself (``optax.apply_if_finite`` in ``optim.clipped_adamw``), so a skipped update
leaves params and optimiser moments exactly as they were.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

ON_NONFINITE = ("stop", "skip")
# Inside the jitted scan: consecutive non-finite updates after which optax would apply them anyway;
# we never want that, so it is out of reach of any run.
MAX_CONSECUTIVE_SKIPS = 2**30


class NonFiniteError(RuntimeError):
    """A loss or gradient became NaN/Inf; the message names the phase and the update."""


def step_flags(loss: jax.Array, grad_norm: jax.Array) -> jax.Array:
    """[] float32: 1.0 where this update's loss or gradient norm is not finite."""
    return (~(jnp.isfinite(loss) & jnp.isfinite(grad_norm))).astype(jnp.float32)


def summarise(per_step: dict[str, jax.Array], first_step: jax.Array) -> dict[str, jax.Array]:
    """Means over ``[num_steps]`` per-update metrics (finite updates only), with
    ``nonfinite_steps`` (count) and ``first_nonfinite_step`` (the update's index, -1 if none).

    ``per_step`` must hold ``"nonfinite"`` (``step_flags``) per update.
    """
    bad = per_step["nonfinite"] > 0
    weights = (~bad).astype(jnp.float32)
    denom = jnp.maximum(weights.sum(), 1.0)
    out = {k: jnp.sum(jnp.where(bad, 0.0, v) * weights) / denom
           for k, v in per_step.items() if k != "nonfinite"}
    out["nonfinite_steps"] = bad.sum().astype(jnp.float32)
    out["first_nonfinite_step"] = jnp.where(
        bad.any(), first_step + jnp.argmax(bad), -1).astype(jnp.float32)
    return out


def check(metrics: dict[str, Any], phase: str, on_nonfinite: str) -> int:
    """Raises NonFiniteError when ``metrics`` (from ``summarise``) saw a non-finite update and
    ``on_nonfinite`` is ``"stop"``; returns the number of skipped updates otherwise."""
    count = int(np.sum(np.asarray(metrics["nonfinite_steps"])))
    if count and on_nonfinite == "stop":
        first = np.asarray(metrics["first_nonfinite_step"]).reshape(-1)
        first = int(first[first >= 0].min())
        raise NonFiniteError(
            f"[{phase}] the loss or its gradient became NaN/Inf at update {first + 1} "
            f"({count} such update(s) in the last call); nothing after the last checkpoint was "
            "saved. Lower the learning rate, pass --on_nonfinite=skip to skip such updates, or "
            "rerun with JAX_DEBUG_NANS=True to find the operation")
    return count


def all_finite(tree: Any) -> bool:
    """Every floating leaf of ``tree`` is finite (integer leaves always are)."""
    leaves = [x for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return bool(_all_finite(leaves))


@jax.jit
def _all_finite(leaves: list[jax.Array]) -> jax.Array:
    # One program per state structure, instead of two tiny ones per leaf on every checkpoint.
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves] or [jnp.bool_(True)]))
