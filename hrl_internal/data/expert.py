"""The gridworld expert (§C.1.1): the exact shortest-path policy.

At every step the expert moves to a neighbour that is strictly closer to the next colour of the task
(distances by BFS through cells that neither hold a wall nor another colour), uniformly among the
equally short moves. With probability epsilon it instead takes a uniformly random action among those
that do not end the episode (noisy demonstrations, App. B.2).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from hrl_internal.envs import gridworld
from hrl_internal.envs.gridworld import EnvParams, EnvState


def action_values(state: EnvState, params: EnvParams) -> jax.Array:
    """``[NUM_ACTIONS]`` int32 distance to the next target after each action (no-op moves excluded).

    A move that bumps into a wall or the border, or enters a coloured cell other than the target, is
    given ``unreachable(params)``: the expert always makes progress and never ends the episode early.
    """
    colour = state.task[jnp.minimum(state.progress, state.task.shape[0] - 1)]
    target = state.object_cells[jnp.maximum(colour, 0)]
    blocked = gridworld.blocked_cells(state, colour, params)
    next_cells = _next_cells(state, params)
    dist = gridworld.distances_to(target, blocked, next_cells, params)
    stays = next_cells == state.agent_cell
    entry_blocked = blocked[next_cells] & (next_cells != target)
    return jnp.where(stays | entry_blocked, gridworld.unreachable(params), dist)


def _next_cells(state: EnvState, params: EnvParams) -> jax.Array:
    is_wall = jnp.zeros((params.num_cells,), bool).at[state.wall_cells].set(True)
    cells = jax.vmap(lambda a: gridworld.move(state.agent_cell, a, params))(
        jnp.arange(gridworld.NUM_ACTIONS))
    return jnp.where(is_wall[cells], state.agent_cell, cells)


def safe_actions(state: EnvState, params: EnvParams) -> jax.Array:
    """``[NUM_ACTIONS]`` bool: actions that do not enter a coloured cell other than the next target."""
    colour = state.task[jnp.minimum(state.progress, state.task.shape[0] - 1)]
    next_cells = _next_cells(state, params)
    blocked = gridworld.blocked_cells(state, colour, params)
    stays = next_cells == state.agent_cell
    return stays | ~blocked[next_cells]


def _best(values: jax.Array, safe: jax.Array, params: EnvParams) -> jax.Array:
    # With no route to the target (possible only when layouts are not filtered), wander safely.
    reachable = jnp.min(values) < gridworld.unreachable(params)
    return jnp.where(reachable, values == jnp.min(values), safe)


def best_moves(state: EnvState, params: EnvParams) -> jax.Array:
    """``[NUM_ACTIONS]`` bool: the moves the clean expert chooses among (uniformly)."""
    return _best(action_values(state, params), safe_actions(state, params), params)


def action_probs(agent_cell: jax.Array, object_cells: jax.Array, wall_cells: jax.Array,
                 colour: jax.Array, params: EnvParams) -> jax.Array:
    """``[NUM_ACTIONS]`` the clean expert's action distribution at one step, from the positions
    and the colour it is heading to (a recorded step's, e.g. of packed rows)."""
    state = EnvState(
        agent_cell=jnp.asarray(agent_cell, jnp.int32),
        object_cells=jnp.asarray(object_cells, jnp.int32),
        wall_cells=jnp.asarray(wall_cells, jnp.int32),
        task=jnp.asarray(colour, jnp.int32)[None], task_len=jnp.ones((), jnp.int32),
        task_id=jnp.zeros((), jnp.int32), progress=jnp.zeros((), jnp.int32),
        time=jnp.zeros((), jnp.int32), done=jnp.zeros((), bool), success=jnp.zeros((), bool))
    best = best_moves(state, params).astype(jnp.float32)
    return best / jnp.sum(best)


def expert_action(key: jax.Array, state: EnvState, params: EnvParams,
                  epsilon: float | jax.Array = 0.0) -> jax.Array:
    """Samples the expert's action for one environment: ``[] int32``.

    Uniform among the shortest moves; with probability ``epsilon`` uniform among safe actions.
    """
    safe = safe_actions(state, params)
    return choose(key, _best(action_values(state, params), safe, params), safe, epsilon)


def choose(key: jax.Array, best: jax.Array, safe: jax.Array,
           epsilon: float | jax.Array = 0.0) -> jax.Array:
    """``expert_action`` given its move sets (``best_moves``, ``safe_actions``): for a caller that
    needs the shortest moves as well as a draw, without a second search."""
    noise_key, greedy_key, random_key = jax.random.split(key, 3)
    greedy = jax.random.categorical(greedy_key, jnp.where(best, 0.0, -jnp.inf))
    random = jax.random.categorical(random_key, jnp.where(safe, 0.0, -jnp.inf))
    explore = jax.random.uniform(noise_key) < epsilon
    return jnp.where(explore, random, greedy).astype(jnp.int32)
