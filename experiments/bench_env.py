"""Benchmark rows for the environments: steps/s and resets/s by batch size (the gridworld and the
MJX ant, through one code path), and expert-dataset episodes/s. ``experiments.bench`` runs them.

Resets are jitted apart from the rollout, so a step row times dynamics and observations alone.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax

from experiments.timing import measure, row
from hrl_internal.data import dataset
from hrl_internal.envs import ant_pinpad, family, gridworld
from hrl_internal.envs.family import EnvParams


def random_actions(key: jax.Array, shape: tuple[int, ...], env: EnvParams) -> jax.Array:
    """Uniform actions ``shape + action shape``: gridworld moves, or ant torques in [-1, 1]."""
    if family.is_ant(env):
        return jax.random.uniform(key, shape + (ant_pinpad.ACTION_SIZE,), minval=-1.0, maxval=1.0)
    return jax.random.randint(key, shape, 0, gridworld.NUM_ACTIONS)


def env_rows(prefix: str, env: EnvParams, batch: int, steps: int, repeats: int
             ) -> list[dict[str, Any]]:
    """``<prefix>_step`` (``steps`` batched steps with observations, one ``lax.scan``) and
    ``<prefix>_reset`` rows at ``batch`` environments."""
    @jax.jit
    def resets(key):
        return jax.vmap(lambda k: family.reset(k, env))(jax.random.split(key, batch))

    @jax.jit
    def rollout(states, key):
        def body(states, a):
            states, reward, _ = jax.vmap(lambda s, a: family.step(s, a, env))(states, a)
            obs = jax.vmap(lambda s: family.observe(s, env))(states)
            return states, reward.sum() + obs[:, 0].sum()
        return jax.lax.scan(body, states, random_actions(key, (steps, batch), env))[1]

    key = jax.random.PRNGKey(0)
    reset = measure(resets, key, repeats=repeats)
    states = jax.block_until_ready(resets(key))
    roll = measure(rollout, states, key, repeats=repeats)
    sizes = {"env": dataclasses.asdict(env)}
    return [row(f"{prefix}_step", batch, batch * steps, "env steps/s", roll, steps=steps,
                seconds_per_batched_step=roll.seconds / steps, **sizes),
            row(f"{prefix}_reset", batch, batch, "resets/s", reset, **sizes)]


def dataset_rows(env: gridworld.EnvParams, episodes: int, repeats: int) -> list[dict[str, Any]]:
    """The expert generating ``episodes`` episodes in one call (``dataset.generate``)."""
    keys = jax.random.split(jax.random.PRNGKey(1), episodes)
    timing = measure(lambda k: dataset.generate(k, env).actions, keys, repeats=repeats)
    return [row("expert_dataset", episodes, episodes, "episodes/s", timing,
                env=dataclasses.asdict(env))]
