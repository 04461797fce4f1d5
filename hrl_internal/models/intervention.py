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
    ``c_g`` where the controllers hold an offset ``c``. ``e [..., d]`` has ``subgoal``'s shape
    plus the model axis; ids index as ``controllers["a"][subgoal]`` would (negative from the end,
    beyond the range clamped).

    Every controller's ``A_g e`` comes from one matmul over all steps, ``[..., d] @ [d, G r]``,
    masked to the step's own ``g``, and one ``[..., G r] @ [G r, d]`` applies the ``B``s: gathering
    ``[..., r, d]`` factors per step made thousands of tiny batched matrix-vector products,
    which XLA's CPU backend runs one by one. The ``G``-fold extra multiply-adds are small (``G``
    is the number of subgoals)."""
    a, b = controllers["a"], controllers["b"]  # [G, r, d], [G, d, r]
    num, rank, d = a.shape
    subgoal = jnp.asarray(subgoal)
    index = jnp.clip(jnp.where(subgoal < 0, subgoal + num, subgoal), 0, num - 1)
    pick = jax.nn.one_hot(index, num, dtype=a.dtype)  # [..., G]
    a_all = a.reshape(num * rank, d).T  # [d, G r]
    b_all = jnp.transpose(b, (0, 2, 1)).reshape(num * rank, d)  # [G r, d]

    def steer(e: jax.Array) -> jax.Array:
        ae = (e @ a_all).reshape(e.shape[:-1] + (num, rank)) * pick[..., None]
        out = e + ae.reshape(e.shape[:-1] + (num * rank,)) @ b_all
        return out + pick @ controllers["c"] if "c" in controllers else out
    return steer
