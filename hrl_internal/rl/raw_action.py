"""Raw-action RL, the baseline: the same learner fine-tuning the base model's own primitive actions.

Every env step is a decision, so the policy-gradient estimate sums over the whole horizon (App. E.2).
``rollout`` acts with KV caches (or the SSM's recurrent state), slots refilled as in ``episodes``; ``rl_loss`` re-scores the actions
with one full-sequence pass over each slot's row of back-to-back episodes (packed, as in
pretraining: attention stays within an episode, so it equals the cached pass).
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from hrl_internal.envs import family
from hrl_internal.envs.family import EnvParams
from hrl_internal.models import backbone
from hrl_internal.models.backbone import ModelConfig
from hrl_internal.rl import episodes, ppo


@dataclasses.dataclass(frozen=True)
class RawActionSpec:
    model: ModelConfig
    env: EnvParams
    num_slots: int = 64
    start_ticks: int = 100
    max_episodes: int = 32

    @property
    def num_ticks(self) -> int:
        return self.start_ticks + self.env.max_steps


class Batch(NamedTuple):
    obs: jax.Array  # [T, S, obs_size] observation before each action (gridworld: bool bits)
    action: jax.Array  # [T, S] int32 (gridworld) or [T, S, A] float32 (ant)
    log_prob: jax.Array  # [T, S] under the acting params
    decide: jax.Array  # [T, S] bool, a counted episode stepped here
    episode: jax.Array  # [T, S] int32 episode ids (the packing segments)
    advantage: jax.Array  # [T, S]


@struct.dataclass
class ActorState:
    env_state: Any  # gridworld.EnvState or ant_pinpad.AntState
    cache: Any  # all blocks (KV cache or recurrent state), batch axis of 1


def _tick(params: Any, state: ActorState, key: jax.Array, spec: RawActionSpec,
          may_restart: jax.Array, fresh: Any):
    model = spec.model
    obs = family.observe(state.env_state, spec.env)
    e, cache = backbone.module(model).lower(params, state.cache, obs[None], model,
                                            model.num_layers)
    outputs = jax.tree.map(lambda x: x[0], backbone.heads(params, e, model))
    action = backbone.sample_action(key, outputs)
    log_prob = backbone.action_log_prob(outputs, action)
    env_state, reward, done = family.step(state.env_state, action, spec.env)
    info = {"success": env_state.success, "task_index": env_state.progress}
    restart = may_restart & done
    env_state = jax.tree.map(lambda a, b: jnp.where(restart, a, b), fresh, env_state)
    cache = backbone.restart_cache(cache, restart)
    # The gridworld's observation is bits: stored as bool, it takes a quarter of the memory.
    kept = obs if backbone.is_continuous(model) else obs > 0.5
    return ActorState(env_state, cache), (kept, action, log_prob, reward, done, restart, info)


def rollout(params: Any, frozen: Any, key: jax.Array, spec: RawActionSpec,
            task_id: jax.Array | None = None) -> tuple[Batch, episodes.Stats]:
    """Whole episodes of the base model (``params``) sampling its actions (all on ``task_id`` if
    given); ``frozen`` unused."""
    del frozen
    S, E, model = spec.num_slots, spec.max_episodes, spec.model
    pool_key, act_key = jax.random.split(key)
    pool = episodes.initial_pool(pool_key, spec.env, S, E, task_id)
    cache, _ = backbone.init_caches(model, model.num_layers, 1, spec.env.max_steps)
    states = ActorState(episodes.pool_entry(pool, jnp.zeros((S,), jnp.int32)),
                        jax.tree.map(lambda x: jnp.broadcast_to(x, (S,) + x.shape), cache))
    tick = jax.vmap(_tick, in_axes=(None, 0, 0, None, 0, 0))

    def live(carry, inputs):
        states, slots = carry
        t, step_key = inputs
        may = episodes.may_restart(slots, t, spec.start_ticks, E)
        fresh = episodes.pool_entry(pool, slots.index + 1)
        states, (obs, action, log_prob, reward, done, restart, info) = tick(
            params, states, jax.random.split(step_key, S), spec, may, fresh)
        rec = episodes.record(slots, reward, done, info["success"], info["task_index"], E)
        slots = episodes.advance(slots, done, restart)
        return (states, slots), (rec, obs, action, jnp.where(rec.active, log_prob, 0.0))

    _, (rec, obs, action, log_prob) = episodes.scan_until_drained(
        live, (states, episodes.start(S)),
        (jnp.arange(spec.num_ticks), jax.random.split(act_key, spec.num_ticks)),
        lambda c: c[1].running)
    advantage, stats = episodes.advantages(rec, S * E)
    stats = stats._replace(decisions=jnp.sum(rec.active))
    # Idle ticks get ids of their own, so they never share an attention segment with an episode.
    idle_ids = S * E + jnp.arange(rec.active.size, dtype=jnp.int32).reshape(rec.active.shape)
    segments = jnp.where(rec.active, rec.episode, idle_ids)
    return Batch(obs, action, log_prob, rec.active, segments, advantage), stats


def log_probs(params: Any, batch: Batch, spec: RawActionSpec) -> jax.Array:
    """``[T, S]`` log-probabilities of the batch's actions, one packed pass per slot."""
    obs = jnp.swapaxes(batch.obs, 0, 1).astype(jnp.float32)  # [S, T, obs_size]
    outputs, _ = backbone.module(spec.model).apply(params, obs, spec.model,
                                                   segments=jnp.swapaxes(batch.episode, 0, 1))
    return jnp.swapaxes(backbone.action_log_prob(outputs, jnp.swapaxes(batch.action, 0, 1)), 0, 1)


def rl_loss(params: Any, batch: Batch, spec: RawActionSpec, clip: float = 0.2
            ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The clipped surrogate over every primitive action: ``(loss [], metrics)``."""
    return ppo.clipped_surrogate(log_probs(params, batch, spec), batch.log_prob, batch.advantage,
                                 batch.decide, clip)
