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


def mixed_down(weights: jax.Array, a: jax.Array, e: jax.Array) -> jax.Array:
    """``Σ_k w_k A_k e`` for ``weights [..., K]``, ``a [K, r, d]``, ``e [..., d]`` -> ``[..., r]``.

    One matmul over all leading axes (``[..., d] @ [d, K r]``), the weights mixed in elementwise.
    Per-step products under ``vmap`` (or gathered per-step factors) made thousands of tiny
    batched matrix-vector products, which XLA's CPU backend runs one by one: the metacontroller's
    edit took half of its training step that way (README, "Faster metacontroller training")."""
    num, rank, d = a.shape
    a_cols = jnp.transpose(a, (2, 0, 1)).reshape(d, num * rank)  # [d, K r]
    ae = (e @ a_cols).reshape(e.shape[:-1] + (num, rank))
    return jnp.sum(weights[..., None] * ae, axis=-2)


def mixed_up(weights: jax.Array, b: jax.Array, x: jax.Array) -> jax.Array:
    """``Σ_k w_k B_k x`` for ``weights [..., K]``, ``b [K, d, r]``, ``x [..., r]`` -> ``[..., d]``:
    one ``[..., K r] @ [K r, d]`` matmul (see ``mixed_down``)."""
    num, d, rank = b.shape
    outer = (weights[..., None] * x[..., None, :]).reshape(x.shape[:-1] + (num * rank,))
    return outer @ jnp.transpose(b, (0, 2, 1)).reshape(num * rank, d)


def subgoal_controller(controllers: dict[str, jax.Array], subgoal: jax.Array):
    """The ``e -> e + U_g e`` map for subgoal ids ``subgoal [...]`` (a one-hot z picks U_g), plus
    ``c_g`` where the controllers hold an offset ``c``. ``e [..., d]`` has ``subgoal``'s shape
    plus the model axis; ids index as ``controllers["a"][subgoal]`` would (negative from the end,
    beyond the range clamped).

    The one-hot id weights every controller (``mixed_down``, ``mixed_up``) instead of gathering
    ``[..., r, d]`` factors per step; the ``G``-fold extra multiply-adds are small (``G`` is the
    number of subgoals)."""
    a, b = controllers["a"], controllers["b"]  # [G, r, d], [G, d, r]
    num = a.shape[0]
    subgoal = jnp.asarray(subgoal)
    index = jnp.clip(jnp.where(subgoal < 0, subgoal + num, subgoal), 0, num - 1)
    pick = jax.nn.one_hot(index, num, dtype=a.dtype)  # [..., G]

    def steer(e: jax.Array) -> jax.Array:
        out = e + mixed_up(pick, b, mixed_down(pick, a, e))
        return out + pick @ controllers["c"] if "c" in controllers else out
    return steer
