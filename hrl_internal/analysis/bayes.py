"""The Bayes-optimal next-action predictor: the ceiling any base model can reach.

The task is not observed, but the demonstrations come from a known expert on a known task set.
Given the history o_{0:t}, a_{0:t-1}, the posterior over tasks is
``p(k | history) ∝ Π_s π_expert(a_s | s_s, task k)`` and the best possible prediction of a_t is
``Σ_k p(k | history) π_expert(a_t | s_t, task k)``. Its accuracy and NLL are the references for the
base model's held-out figures, and its posterior over the current subgoal is the reference for the
linear probes (how much of the subgoal is knowable at all from the history).

The **next-colour reference** knows the true task (hence, with the history, the next target colour)
but not the expert's tie-break among equally short moves: its accuracy and NLL cap any predictor
that is told the current subgoal — the supervised subgoal controllers, and a metacontroller whose
codes carry subgoals. A predictor above it is being told moves, not subgoals.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from hrl_internal.data import expert
from hrl_internal.data.dataset import Episodes
from hrl_internal.envs import gridworld
from hrl_internal.envs.gridworld import EnvParams

# Probability mass given to every action, so that a hypothesis is never ruled out by a single
# action outside its expert's support (epsilon-noise in the data); small enough to change nothing
# on clean demonstrations.
_FLOOR = 1e-4


class BayesReference(NamedTuple):
    """Per step of each episode, ``[N, T]``."""

    action_probs: jax.Array  # [N, T, NUM_ACTIONS] posterior predictive of a_t
    subgoal_probs: jax.Array  # [N, T, num_subgoals] posterior over the current subgoal


def _expert_probs(state: gridworld.EnvState, params: EnvParams) -> jax.Array:
    """``[NUM_ACTIONS]`` the clean expert's action distribution (uniform over shortest moves)."""
    best = expert.best_moves(state, params)
    p = best / jnp.sum(best)
    return (1 - _FLOOR * gridworld.NUM_ACTIONS) * p + _FLOOR


def _episode(agent_cells, actions, object_cells, wall_cells, params: EnvParams):
    tasks = gridworld.task_array(params)  # [K, task_len]
    num_tasks = tasks.shape[0]
    num_subgoals = params.num_objects // gridworld.COLOURS_PER_SUBGOAL

    def hypothesis(task):
        return gridworld.EnvState(
            agent_cell=agent_cells[0].astype(jnp.int32),
            object_cells=object_cells.astype(jnp.int32),
            wall_cells=wall_cells.astype(jnp.int32), task=task,
            task_len=jnp.sum(task != gridworld.NO_TASK).astype(jnp.int32),
            task_id=jnp.zeros((), jnp.int32), progress=jnp.zeros((), jnp.int32),
            time=jnp.zeros((), jnp.int32), done=jnp.zeros((), bool), success=jnp.zeros((), bool))

    states = jax.vmap(hypothesis)(tasks)

    def one_step(carry, action):
        states, log_post = carry
        probs = jax.vmap(_expert_probs, in_axes=(0, None))(states, params)  # [K, A]
        post = jax.nn.softmax(log_post)
        predictive = post @ probs
        subgoal = jax.vmap(gridworld.current_subgoal)(states)
        subgoal_probs = jax.nn.one_hot(subgoal, num_subgoals).T @ post
        log_post = log_post + jnp.log(probs[:, action])
        states = jax.vmap(gridworld.step, in_axes=(0, None, None))(states, action, params)[1]
        return (states, log_post), (predictive, subgoal_probs)

    init = (states, jnp.full((num_tasks,), -jnp.log(num_tasks)))
    _, (action_probs, subgoal_probs) = jax.lax.scan(one_step, init,
                                                    jnp.asarray(actions, jnp.int32))
    return action_probs, subgoal_probs


@functools.partial(jax.jit, static_argnums=4)
def _reference(agent_cells, actions, object_cells, wall_cells, params):
    return jax.vmap(_episode, in_axes=(0, 0, 0, 0, None))(
        agent_cells, actions, object_cells, wall_cells, params)


def reference(episodes: Episodes, params: EnvParams) -> BayesReference:
    """The Bayes-optimal predictions along each episode of ``episodes`` (task set of ``params``)."""
    action_probs, subgoal_probs = _reference(
        jnp.asarray(episodes.agent_cells), jnp.asarray(episodes.actions),
        jnp.asarray(episodes.object_cells), jnp.asarray(episodes.wall_cells), params)
    return BayesReference(action_probs, subgoal_probs)


def scores(episodes: Episodes, params: EnvParams) -> dict[str, float]:
    """Accuracy and NLL of the Bayes-optimal action predictor, and accuracy of its subgoal guess,
    over the real steps of ``episodes``."""
    ref = reference(episodes, params)
    mask = jnp.asarray(episodes.mask, jnp.float32)
    actions = jnp.asarray(episodes.actions, jnp.int32)
    taken = jnp.take_along_axis(ref.action_probs, actions[..., None], -1)[..., 0]
    correct = jnp.argmax(ref.action_probs, -1) == actions
    subgoal_correct = jnp.argmax(ref.subgoal_probs, -1) == jnp.asarray(episodes.subgoals)
    n = jnp.sum(mask)
    return {
        "accuracy": float(jnp.sum(correct * mask) / n),
        "nll": float(-jnp.sum(jnp.log(taken) * mask) / n),
        "subgoal_accuracy": float(jnp.sum(subgoal_correct * mask) / n),
    }


def _next_colour_episode(agent_cells, actions, object_cells, wall_cells, task_id,
                         params: EnvParams):
    state = gridworld.layout_state(agent_cells[0], object_cells, wall_cells, task_id, params)

    def one_step(state, action):
        probs = _expert_probs(state, params)
        return gridworld.step(state, action, params)[1], probs

    return jax.lax.scan(one_step, state, actions)[1]


@functools.partial(jax.jit, static_argnums=5)
def _next_colour(agent_cells, actions, object_cells, wall_cells, task_id, params):
    return jax.vmap(_next_colour_episode, in_axes=(0, 0, 0, 0, 0, None))(
        agent_cells, actions, object_cells, wall_cells, task_id, params)


def next_colour_probs(episodes: Episodes, params: EnvParams) -> jax.Array:
    """``[N, T, NUM_ACTIONS]`` the next-colour reference's predictions along each episode: the
    expert's own distribution for the true task (it knows the next colour, not the tie-break)."""
    return _next_colour(
        jnp.asarray(episodes.agent_cells, jnp.int32), jnp.asarray(episodes.actions, jnp.int32),
        jnp.asarray(episodes.object_cells, jnp.int32), jnp.asarray(episodes.wall_cells, jnp.int32),
        jnp.asarray(episodes.task_id, jnp.int32), params)


def next_colour_scores(episodes: Episodes, params: EnvParams) -> dict[str, float]:
    """Accuracy and NLL, over the real steps of ``episodes``, of the predictor that knows the task
    (so the next target colour) but not the expert's tie-break: the expert's own distribution.
    Accuracy is that of its argmax (right 1/k of the time where k moves are equally short)."""
    probs = next_colour_probs(episodes, params)
    mask = jnp.asarray(episodes.mask, jnp.float32)
    actions = jnp.asarray(episodes.actions, jnp.int32)
    taken = jnp.take_along_axis(probs, actions[..., None], -1)[..., 0]
    correct = jnp.argmax(probs, -1) == actions
    n = jnp.sum(mask)
    return {"accuracy": float(jnp.sum(correct * mask) / n),
            "nll": float(-jnp.sum(jnp.log(taken) * mask) / n)}
