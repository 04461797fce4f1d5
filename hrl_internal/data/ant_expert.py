"""The ant-pinpad expert (§C.1.1, Table A3) as an actor: one goal-conditioned Gaussian policy for
every task, and its demonstrations (``rollout``). ``training/expert_ppo.py`` trains it.

The expert sees more than the base model will: the environment's observation, per cell a one-hot
of the grid-level shortest-path direction towards the current target colour, and that direction
at the ant's own cell turned into the torso's heading frame (``expert_observation``). Clean
demonstrations use the Gaussian's mean action (``rollout(..., greedy=True)``).
"""
from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from hrl_internal.envs import ant_pinpad
from hrl_internal.envs.ant_pinpad import AntEnvParams, AntState

Params = dict[str, Any]


def expert_obs_size(env: AntEnvParams) -> int:
    return env.obs_size + 4 * env.num_cells + 2


def heading_frame(state: AntState, direction: jax.Array) -> jax.Array:
    """World ``direction [2]`` -> the torso's yaw frame ``[2]`` (x forward, y left)."""
    quat = state.pipeline_state.q[3:7]  # (w, x, y, z)
    w, x, y, z = quat[0], quat[1], quat[2], quat[3]
    yaw = jnp.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    c, s = jnp.cos(yaw), jnp.sin(yaw)
    return jnp.stack([c * direction[0] + s * direction[1], -s * direction[0] + c * direction[1]])


def expert_observation(state: AntState, env: AntEnvParams) -> jax.Array:
    """``[expert_obs_size]``: observation ‖ per-cell path directions ‖ own direction, ego frame."""
    directions = ant_pinpad.shortest_path_directions(state, env).reshape(-1)
    own = heading_frame(state, ant_pinpad.target_direction(state, env))
    return jnp.concatenate([ant_pinpad.observe(state, env), directions.astype(jnp.float32), own])


def _dense(key: jax.Array, fan_in: int, fan_out: int, scale: float = 1.0) -> Params:
    w = jax.random.normal(key, (fan_in, fan_out)) * (scale / math.sqrt(fan_in))
    return {"w": w, "b": jnp.zeros((fan_out,))}


def _mlp_init(key: jax.Array, sizes: tuple[int, ...], last_scale: float) -> list[Params]:
    keys = jax.random.split(key, len(sizes) - 1)
    return [_dense(k, a, b, last_scale if i == len(sizes) - 2 else 1.0)
            for i, (k, a, b) in enumerate(zip(keys, sizes[:-1], sizes[1:]))]


def _mlp(layers: list[Params], x: jax.Array) -> jax.Array:
    for i, p in enumerate(layers):
        x = x @ p["w"] + p["b"]
        if i < len(layers) - 1:
            x = jax.nn.swish(x)
    return x


def init_params(key: jax.Array, env: AntEnvParams, hidden: int, init_log_std: float) -> Params:
    """The policy's MLP with its state-independent ``log_std``, and the critic's MLP."""
    k_pi, k_v = jax.random.split(key)
    sizes = (expert_obs_size(env), hidden, hidden)
    return {
        # A small last layer: the first actions are near zero torque plus exploration noise.
        "policy": _mlp_init(k_pi, sizes + (ant_pinpad.ACTION_SIZE,), 0.01),
        "log_std": jnp.full((ant_pinpad.ACTION_SIZE,), init_log_std, jnp.float32),
        "value": _mlp_init(k_v, sizes + (1,), 1.0),
    }


def policy(params: Params, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``obs [..., expert_obs_size]`` -> ``(mean [..., A] in (-1, 1), log_std [A])``."""
    return jnp.tanh(_mlp(params["policy"], obs)), params["log_std"]


def value(params: Params, obs: jax.Array) -> jax.Array:
    return _mlp(params["value"], obs)[..., 0]


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, x: jax.Array) -> jax.Array:
    return -0.5 * jnp.sum(((x - mean) * jnp.exp(-log_std)) ** 2 + 2.0 * log_std
                          + math.log(2.0 * math.pi), axis=-1)


def act(params: Params, state: AntState, key: jax.Array, env: AntEnvParams, greedy: bool
        ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(expert observation, action [A], its log-probability)`` in ``state``: the mean action
    when ``greedy``, else a draw from the Gaussian (not yet clipped to the actuator range)."""
    obs = expert_observation(state, env)
    mean, log_std = policy(params, obs)
    action = mean if greedy else mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    return obs, action, gaussian_log_prob(mean, log_std, action)



class Rollout(NamedTuple):
    """Whole episodes of the expert, ``[N, T(+1), ...]``; the base model's data."""

    obs: jax.Array  # [N, T+1, obs_size], the environment's observation (not the expert's)
    actions: jax.Array  # [N, T, A]
    mask: jax.Array  # [N, T] bool, a real step
    subgoals: jax.Array  # [N, T] int, the colour being sought (analysis labels)
    task_index: jax.Array  # [N, T] int, subgoals completed before the step
    task_id: jax.Array  # [N] int
    success: jax.Array  # [N] bool
    object_cells: jax.Array  # [N, num_objects]
    wall_cells: jax.Array  # [N, num_walls]


def _episode(params: Params, key: jax.Array, env: AntEnvParams, greedy: bool) -> Rollout:
    reset_key, act_key = jax.random.split(key)
    start = ant_pinpad.reset(reset_key, env)

    def one(state, step_key):
        _, action, _ = act(params, state, step_key, env, greedy)
        action = jnp.clip(action, -1.0, 1.0)
        record = (ant_pinpad.observe(state, env), action, ~state.done,
                  ant_pinpad.current_subgoal(state), state.progress)
        return ant_pinpad.step(state, action, env), record

    last, (obs, actions, live, subgoals, progress) = jax.lax.scan(
        one, start, jax.random.split(act_key, env.max_steps))
    obs = jnp.concatenate([obs, ant_pinpad.observe(last, env)[None]])
    return Rollout(obs, actions, live, subgoals, progress, start.task_id, last.success,
                   start.object_cells, start.wall_cells)


@functools.partial(jax.jit, static_argnames=("env", "greedy"))
def rollout(params: Params, keys: jax.Array, *, env: AntEnvParams, greedy: bool = True
            ) -> Rollout:
    """One episode per key (``keys [N, 2]``), acting with the mean action when ``greedy``."""
    chex.assert_rank(keys, 2)
    return jax.vmap(_episode, in_axes=(None, 0, None, None))(params, keys, env, greedy)
