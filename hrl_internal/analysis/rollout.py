"""The base model acting in the environment, one step at a time with KV caches.

Each step: observe, run the lower blocks (``transformer.lower``), optionally edit the residual
stream at ``layer`` (``intervene``), run the upper blocks and sample an action, step the env. A
batch of episodes is one jitted call: a ``lax.scan`` over time of batched model and env steps.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from hrl_internal.envs import gridworld
from hrl_internal.envs.gridworld import EnvParams
from hrl_internal.models import transformer
from hrl_internal.models.transformer import TransformerConfig

# intervene(intervene_params, e_t [d_model], env_state) -> e_t; may read ground-truth labels from
# the env state (analysis only). A module-level function, so jit compiles it once.
Intervention = Callable[[Any, jax.Array, gridworld.EnvState], jax.Array]


class RolloutResult(NamedTuple):
    success: jax.Array  # [N] bool
    length: jax.Array  # [N] int32, steps taken
    progress: jax.Array  # [N] int32, colours of the task visited


def rollout(key: jax.Array, params: Any, model: TransformerConfig, env: EnvParams,
            num_episodes: int, *, layer: int | None = None,
            intervene: Intervention | None = None, intervene_params: Any = None,
            greedy: bool = False) -> RolloutResult:
    """Runs ``num_episodes`` episodes of the model acting (sampling unless ``greedy``), with
    ``intervene(intervene_params, e, state)`` editing the residual stream at ``layer``."""
    layer = model.num_layers if layer is None else layer
    return _rollout(key, params, intervene_params, model, env, num_episodes, layer, intervene,
                    greedy)


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6, 7, 8))
def _rollout(key, params, intervene_params, model, env, num_episodes, layer, intervene, greedy):
    reset_key, act_key = jax.random.split(key)
    obs, state = jax.vmap(gridworld.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_episodes), env)
    # Episodes advance in lockstep (finished ones are absorbing), so caches share one position.
    lower_cache, upper_cache = transformer.init_caches(model, layer, num_episodes)
    env_step = jax.vmap(gridworld.step, in_axes=(0, 0, None))

    def act(carry, step_key):
        obs, state, lower_cache, upper_cache = carry
        e, lower_cache = transformer.lower(params, lower_cache, obs, model, layer)
        if intervene is not None:
            e = jax.vmap(intervene, in_axes=(None, 0, 0))(intervene_params, e, state)
        outputs, upper_cache = transformer.upper(params, upper_cache, e, model, layer)
        logits = outputs["action_logits"]
        action = (jnp.argmax(logits, -1) if greedy
                  else jax.random.categorical(step_key, logits)).astype(jnp.int32)
        obs, state, _, _, _ = env_step(state, action, env)
        return (obs, state, lower_cache, upper_cache), None

    carry = (obs, state, lower_cache, upper_cache)
    (_, final, _, _), _ = jax.lax.scan(act, carry, jax.random.split(act_key, env.max_steps))
    return RolloutResult(final.success, final.time, final.progress)
