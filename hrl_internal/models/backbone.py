"""One interface over the two base models, for the code that works with either.

The gridworld's base model is a transformer with categorical actions, the ant's a Hawk SSM with
diagonal-Gaussian actions. Both read and write the residual stream the same way (``apply`` with
a ``controller`` at ``layer``; ``lower``/``upper`` split at ``layer`` for acting one step at a
time); what differs is dispatched here on the type of the model's config, so the metacontroller
and internal-RL code has one path for both.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp

from hrl_internal.models import hawk, transformer
from hrl_internal.models.metacontroller import resets_from_segments

ModelConfig = transformer.TransformerConfig | hawk.HawkConfig


def module(model: ModelConfig) -> ModuleType:
    """The module implementing ``model``: ``init``, ``embed``, ``heads``, ``apply``, ``lower``,
    ``upper``."""
    return hawk if isinstance(model, hawk.HawkConfig) else transformer


def is_continuous(model: ModelConfig) -> bool:
    return isinstance(model, hawk.HawkConfig)


def run_blocks(params: Any, e: jax.Array, start: int, stop: int, model: ModelConfig,
               segments: jax.Array) -> jax.Array:
    """Blocks ``start+1 .. stop`` over ``e [B, T, d]`` of packed rows (``segments [B, T]``):
    ``[B, T, d]``, every episode computed as if alone in its row."""
    if is_continuous(model):
        run = jax.vmap(hawk.run_blocks, in_axes=(None, 0, None, None, None, 0))
        return run(params, e, start, stop, model, resets_from_segments(segments))[0]
    run = jax.vmap(transformer.run_blocks, in_axes=(None, 0, None, None, None, 0))
    return run(params, e, start, stop, model, segments)[0]


def heads(params: Any, e: jax.Array, model: ModelConfig) -> dict[str, jax.Array]:
    """Final norm and output heads on the last block's output ``e [..., d_model]``."""
    if is_continuous(model):
        return hawk.heads(params, e, model)  # the log-std bounds live in the config
    return transformer.heads(params, e)


def init_caches(model: ModelConfig, layer: int, batch: int, length: int | None = None
                ) -> tuple[Any, Any]:
    """Empty ``(lower, upper)`` step states (KV caches or recurrent states) split at ``layer``,
    for episodes of at most ``length`` steps (a KV cache holds that many; default the model's
    context; a recurrent state does not depend on it)."""
    if is_continuous(model):
        return hawk.init_states(model, layer, batch)
    return transformer.init_caches(model, layer, batch, length)


def restart_cache(cache: Any, restart: jax.Array) -> Any:
    """``cache`` emptied where ``restart []`` is True (a new episode), else unchanged.

    A KV cache only needs its position reset: slots at or past it are masked as the future and
    each is overwritten before it is read again. A recurrent state is zeroed.
    """
    if isinstance(cache, transformer.KVCache):
        first = None if cache.first is None else jnp.where(restart, 0, cache.first)
        return cache._replace(position=jnp.where(restart, 0, cache.position), first=first)
    return jax.tree.map(lambda h: jnp.where(restart, 0.0, h), cache)


# Which blocks forget the history at a subgoal change or switch: none (the paper's), those below
# the controlled layer, those above it, or all.
FORGET = ("none", "lower", "upper", "both")


def check_forget(forget: str) -> None:
    if forget not in FORGET:
        raise ValueError(f"forget must be one of {', '.join(FORGET)}, got {forget!r}")


def forgetting(forget: str) -> tuple[bool, bool]:
    """``(lower, upper)``: whether the blocks below and above the layer forget under ``forget``."""
    return forget in ("lower", "both"), forget in ("upper", "both")


def forget_caches(lower: Any, upper: Any, flag: jax.Array, forget: str) -> tuple[Any, Any]:
    """The ``(lower, upper)`` caches with ``forget_before(., flag)`` applied to those that
    ``forget`` names (with ``flag`` all False: the pytree structure forgetting keeps)."""
    forgets_lower, forgets_upper = forgetting(forget)
    return (forget_before(lower, flag) if forgets_lower else lower,
            forget_before(upper, flag) if forgets_upper else upper)


def forget_before(cache: Any, forget: jax.Array) -> Any:
    """``cache`` with each sequence's past forgotten where ``forget [batch]`` is True: its next
    step attends to nothing written before it (a KV cache masks those positions from then on; a
    recurrent state is zeroed). An analysis of what the history contributes (``rollout``'s
    ``forget``), not something the model was trained with."""
    if isinstance(cache, transformer.KVCache):
        first = jnp.zeros(forget.shape, jnp.int32) if cache.first is None else cache.first
        return cache._replace(first=jnp.where(forget, cache.position, first))
    return jax.tree.map(lambda h: jnp.where(forget[:, None], 0.0, h), cache)


def sample_action(key: jax.Array, outputs: dict[str, jax.Array]) -> jax.Array:
    """A primitive action drawn from the heads' distribution (batch axes of ``outputs``)."""
    if "action_mean" in outputs:
        return jnp.clip(hawk.sample_action(key, outputs), -1.0, 1.0)
    return jax.random.categorical(key, outputs["action_logits"]).astype(jnp.int32)


def greedy_action(outputs: dict[str, jax.Array]) -> jax.Array:
    """The most likely primitive action (the Gaussian's mean, or the arg-max)."""
    if "action_mean" in outputs:
        return jnp.clip(hawk.mean_action(outputs), -1.0, 1.0)
    return jnp.argmax(outputs["action_logits"], -1).astype(jnp.int32)


def action_log_prob(outputs: dict[str, jax.Array], actions: jax.Array) -> jax.Array:
    """``ln p(a_t | ...)`` per step: ``[...]``."""
    if "action_mean" in outputs:
        return -hawk.action_nll(outputs, actions)
    logp = jax.nn.log_softmax(outputs["action_logits"])
    return jnp.take_along_axis(logp, actions[..., None].astype(jnp.int32), -1)[..., 0]
