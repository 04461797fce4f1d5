"""Residual-stream interventions: the linear controller ``e <- e + U e`` with ``U = B A`` of rank r.

``U`` is never formed: ``B (A e)`` costs O(r d) per token instead of O(d^2). The same function
serves the supervised subgoal controllers, the metacontroller's decoder and internal RL.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def low_rank_update(e: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """``e + B (A e)``.

    Args:
      e: [..., d_model] residual stream.
      a: [..., rank, d_model] (the ``...`` broadcast against ``e``'s).
      b: [..., d_model, rank].
    Returns:
      [..., d_model].
    """
    return e + jnp.einsum("...dr,...r->...d", b, jnp.einsum("...rd,...d->...r", a, e))


def init_subgoal_controllers(key: jax.Array, num_subgoals: int, d_model: int, rank: int,
                             affine: bool = False) -> dict[str, jax.Array]:
    """One low-rank controller per subgoal: ``a [G, r, d]`` random, ``b [G, d, r]`` zero, so every
    controller starts as the identity map. ``affine`` adds an offset ``c [G, d]`` (zero), the
    edit ``e + U_g e + c_g``: not the paper's form, a diagnostic of whether a linear edit limits
    steering (``experiments.steer_budget form=affine``)."""
    a = jax.random.normal(key, (num_subgoals, rank, d_model)) / jnp.sqrt(d_model)
    controllers = {"a": a, "b": jnp.zeros((num_subgoals, d_model, rank))}
    if affine:
        controllers["c"] = jnp.zeros((num_subgoals, d_model))
    return controllers


def subgoal_controller(controllers: dict[str, jax.Array], subgoal: jax.Array):
    """The ``e -> e + U_g e`` map for subgoal ids ``subgoal [...]`` (a one-hot z picks U_g), plus
    ``c_g`` where the controllers hold an offset ``c``."""
    a, b = controllers["a"][subgoal], controllers["b"][subgoal]
    if "c" not in controllers:
        return lambda e: low_rank_update(e, a, b)
    c = controllers["c"][subgoal]
    return lambda e: low_rank_update(e, a, b) + c
