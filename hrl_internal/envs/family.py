"""One interface over the environments, for the code that runs a model in the loop.

``gridworld`` returns observations from ``reset``/``step``; ``ant_pinpad`` returns states only
(its observation costs work, so it is computed when asked for). The functions here give both the
same shape, dispatched on the type of the environment's parameters. Every state has ``done``,
``success`` and ``progress`` (colours visited).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from hrl_internal.envs import ant_pinpad, gridworld

EnvParams = gridworld.EnvParams | ant_pinpad.AntEnvParams


def is_ant(env: EnvParams) -> bool:
    return isinstance(env, ant_pinpad.AntEnvParams)


def reset(key: jax.Array, env: EnvParams, task_id: jax.Array | None = None) -> Any:
    """A new episode's state (task uniform over the task set unless ``task_id`` is given)."""
    if is_ant(env):
        return ant_pinpad.reset(key, env, task_id)
    return gridworld.reset(key, env, task_id)[1]


def observe(state: Any, env: EnvParams) -> jax.Array:
    """``[obs_size]`` float32."""
    return (ant_pinpad if is_ant(env) else gridworld).observe(state, env)


def step(state: Any, action: jax.Array, env: EnvParams
         ) -> tuple[Any, jax.Array, jax.Array]:
    """``(state, reward [], done [])``; a finished episode is absorbing with reward 0."""
    if is_ant(env):
        state = ant_pinpad.step(state, action, env)
        return state, state.reward, state.done
    _, state, reward, done, _ = gridworld.step(state, action, env)
    return state, reward, done


def current_subgoal(state: Any, env: EnvParams) -> jax.Array:
    """The subgoal being pursued: a colour pair (gridworld) or a colour (ant)."""
    return (ant_pinpad if is_ant(env) else gridworld).current_subgoal(state)


def colour_here(state: Any, env: EnvParams) -> jax.Array:
    """[] int32 colour of the cell the agent (the ant's torso) is in, -1 where it holds none: at
    the end of an episode that failed before its time limit, the wrong colour it entered."""
    cell = state.cell if is_ant(env) else state.agent_cell
    hit = state.object_cells == cell
    return jnp.where(jnp.any(hit), jnp.argmax(hit), -1).astype(jnp.int32)


def colours_per_subgoal(env: EnvParams) -> int:
    """Colours a subgoal spans: a pair in the gridworld, one on the ant (progress counts colours)."""
    return 1 if is_ant(env) else gridworld.COLOURS_PER_SUBGOAL
