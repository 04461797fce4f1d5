"""Slot bookkeeping for collecting whole episodes at full batch utilisation.

A rollout runs ``num_slots`` environments for ``start_ticks + max_steps`` primitive ticks. A slot
whose episode ends starts the next one from a pool of pre-drawn initial states, as long as fewer
than ``start_ticks`` ticks have passed (and its pool lasts); after that it drains. Every episode
that starts therefore finishes inside the rollout: none is cut off, so the batch is not biased
towards short episodes, while most ticks do real work (episodes that fail early no longer wait
for the slowest one). Episode ``k`` of slot ``s`` has id ``s * max_episodes + k``.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from hrl_internal.envs import family
from hrl_internal.envs.family import EnvParams
from hrl_internal.rl import ppo
from hrl_internal.utils import sharding


class Slots(NamedTuple):
    """Per slot ``[S]``."""

    running: jax.Array  # bool, an episode is in progress
    index: jax.Array  # int32, which of the slot's episodes (0-based)
    first: jax.Array  # bool, the next tick is its episode's first


class Ticks(NamedTuple):
    """What every rollout records per tick, ``[T, S]``."""

    active: jax.Array  # bool, the slot stepped a counted episode at this tick
    episode: jax.Array  # int32, the episode's id
    first: jax.Array  # bool, first tick of the episode
    reward: jax.Array  # f32
    ended: jax.Array  # bool, the episode ended at this tick
    success: jax.Array  # bool, ... with success
    progress: jax.Array  # int32, colours visited when it ended (0 elsewhere)


class Stats(NamedTuple):
    """Totals over one rollout's finished episodes (all ``[]``)."""

    episodes: jax.Array
    successes: jax.Array
    progress: jax.Array  # summed over episodes
    env_steps: jax.Array
    decisions: jax.Array


def initial_pool(key: jax.Array, env: EnvParams, num_slots: int, max_episodes: int,
                 task_id: jax.Array | None = None) -> Any:
    """``[S, max_episodes]`` initial env states (layouts and tasks), drawn up front; every task
    is ``task_id`` (an index into ``env``'s task set, may be traced) if given."""
    keys = jax.random.split(key, num_slots * max_episodes)
    states = jax.vmap(family.reset, in_axes=(0, None, None))(keys, env, task_id)
    return sharding.shard_batch(
        jax.tree.map(lambda x: x.reshape((num_slots, max_episodes) + x.shape[1:]), states))


def start(num_slots: int) -> Slots:
    return Slots(jnp.ones((num_slots,), bool), jnp.zeros((num_slots,), jnp.int32),
                 jnp.ones((num_slots,), bool))


def pool_entry(pool: Any, index: jax.Array) -> Any:
    """Each slot's pool state at ``index [S]`` (clipped to the pool)."""
    last = jax.tree.leaves(pool)[0].shape[1] - 1
    idx = jnp.minimum(index, last)
    return jax.tree.map(lambda x: jax.vmap(lambda row, i: row[i])(x, idx), pool)


def may_restart(slots: Slots, tick: jax.Array, start_ticks: int, max_episodes: int
                ) -> jax.Array:
    """``[S]`` bool: if the slot's episode ends at ``tick``, a new one begins. It depends only on
    time and the slot's count, never on how episodes went, so finished episodes stay unbiased."""
    return slots.running & (tick + 1 < start_ticks) & (slots.index + 1 < max_episodes)


def advance(slots: Slots, done: jax.Array, restart: jax.Array) -> Slots:
    running = jnp.where(slots.running & done, restart, slots.running)
    return Slots(running, slots.index + restart.astype(jnp.int32), restart)


def record(slots: Slots, reward: jax.Array, done: jax.Array, success: jax.Array,
           progress: jax.Array, max_episodes: int) -> Ticks:
    """The tick's record, from the slots *before* ``advance``."""
    active = slots.running
    ended = active & done
    ids = jnp.arange(active.shape[0], dtype=jnp.int32) * max_episodes + slots.index
    return Ticks(active, ids, slots.first & active, jnp.where(active, reward, 0.0), ended,
                 ended & success, jnp.where(ended, progress, 0))


def scan_until_drained(live, carry, inputs, running):
    """``lax.scan(live, carry, inputs)``, where ticks after every slot has drained
    (``running(carry)`` all False) cost nothing: a real branch that emits zeros."""
    def idle(carry, x):
        return carry, jax.tree.map(jnp.zeros_like, jax.eval_shape(live, carry, x)[1])

    # Every leaf of the carry is per slot [S, ...]: the slots are what data parallelism splits.
    return jax.lax.scan(lambda c, x: jax.lax.cond(jnp.any(running(c)), live, idle, c, x),
                        sharding.shard_batch(carry), inputs)


def advantages(ticks: Ticks, num_episodes: int) -> tuple[jax.Array, Stats]:
    """Per-tick advantage ``[T, S]`` (the batch-normalised return of its episode) and totals."""
    ids = ticks.episode.reshape(-1)
    seg = lambda x: jax.ops.segment_sum(x.reshape(-1), ids, num_segments=num_episodes)
    returns = seg(ticks.reward)
    exists = seg(ticks.ended.astype(jnp.float32)) > 0
    n = jnp.maximum(jnp.sum(exists), 1)
    mean = jnp.sum(jnp.where(exists, returns, 0.0)) / n
    std = jnp.sqrt(jnp.sum(jnp.where(exists, (returns - mean) ** 2, 0.0)) / n)
    adv = (returns - mean) / (std + ppo.ADVANTAGE_EPS)
    stats = Stats(jnp.sum(ticks.ended), jnp.sum(ticks.success), jnp.sum(ticks.progress),
                  jnp.sum(ticks.active), jnp.zeros((), jnp.int32))
    return jnp.where(ticks.active, adv[ticks.episode], 0.0), stats
