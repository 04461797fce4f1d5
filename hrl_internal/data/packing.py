"""Sequence packing: several short episodes share one row of ``max_steps`` token slots.

Expert episodes are ~30 steps long against a 100-step limit, so padding each to T wastes about
two thirds of the compute. A packed row holds whole episodes back to back; the model attends only
within a segment (``transformer.apply(..., segments=...)``) and relative positions are per-episode
differences, so a packed forward pass computes exactly what the separate episodes would.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hrl_internal.data.dataset import Episodes
from hrl_internal.envs import gridworld
from hrl_internal.envs.gridworld import EnvParams
from hrl_internal.models import backbone

NO_SEGMENT = -1


class PackedRows(NamedTuple):
    """``[rows, slots]`` token slots; slot s of a row is step ``position`` of episode ``episode``."""

    agent_cells: Any  # [R, S] int, the agent's cell when o_t is emitted
    next_cells: Any  # [R, S] int, its cell at o_{t+1}
    actions: Any  # [R, S] int
    mask: Any  # [R, S] bool, the slot holds a real step
    segments: Any  # [R, S] int, which episode of the row (NO_SEGMENT for padding)
    object_cells: Any  # [R, S, num_objects] int, the slot's episode layout
    wall_cells: Any  # [R, S, num_walls] int
    subgoals: Any  # [R, S] int, analysis labels only
    episode: Any  # [R, S] int, index of the episode in the source dataset (-1 for padding)
    # The colour the expert heads to at the slot: with the positions, it gives the expert's
    # action distribution (``expert.action_probs``), the ``--action_target=expert`` target.
    colours: Any  # [R, S] int

    @property
    def num_rows(self) -> int:
        return self.actions.shape[0]


def first_fit(lengths: np.ndarray, capacity: int) -> list[list[int]]:
    """Groups episode indices into rows of at most ``capacity`` steps (first fit, longest first)."""
    order = np.argsort(-lengths, kind="stable")
    room = np.zeros(0, np.int64)
    rows: list[list[int]] = []
    for i in order:
        fits = np.flatnonzero(room >= lengths[i])
        if fits.size:
            r = fits[0]
        else:
            r = len(rows)
            rows.append([])
            room = np.append(room, capacity)
        rows[r].append(int(i))
        room[r] -= lengths[i]
    return rows


def pack(episodes: Episodes, params: EnvParams) -> PackedRows:
    """Packs host episodes (numpy) into rows of ``params.max_steps`` slots."""
    s = params.max_steps
    lengths = np.asarray(episodes.mask).sum(axis=1)
    rows = first_fit(lengths, s)
    r = len(rows)
    out = {
        "agent_cells": np.zeros((r, s), np.int16), "next_cells": np.zeros((r, s), np.int16),
        "actions": np.zeros((r, s), np.int8), "mask": np.zeros((r, s), bool),
        "segments": np.full((r, s), NO_SEGMENT, np.int16),
        "object_cells": np.zeros((r, s, params.num_objects), np.int16),
        "wall_cells": np.zeros((r, s, params.num_walls), np.int16),
        "subgoals": np.zeros((r, s), np.int16), "episode": np.full((r, s), -1, np.int32),
        "colours": np.zeros((r, s), np.int8),
    }
    tasks = np.asarray(gridworld.task_array(params))
    colours = np.maximum(tasks[np.asarray(episodes.task_id)[:, None],
                               np.minimum(np.asarray(episodes.task_index), tasks.shape[1] - 1)], 0)
    # Padding slots render a valid (but masked) observation: the row's first episode's layout.
    for row, members in enumerate(rows):
        start = 0
        out["object_cells"][row] = episodes.object_cells[members[0]]
        out["wall_cells"][row] = episodes.wall_cells[members[0]]
        for segment, i in enumerate(members):
            n = int(lengths[i])
            span = slice(start, start + n)
            out["agent_cells"][row, span] = episodes.agent_cells[i, :n]
            out["next_cells"][row, span] = episodes.agent_cells[i, 1:n + 1]
            out["actions"][row, span] = episodes.actions[i, :n]
            out["mask"][row, span] = True
            out["segments"][row, span] = segment
            out["object_cells"][row, span] = episodes.object_cells[i]
            out["wall_cells"][row, span] = episodes.wall_cells[i]
            out["subgoals"][row, span] = episodes.subgoals[i, :n]
            out["episode"][row, span] = i
            out["colours"][row, span] = colours[i, :n]
            start += n
    return PackedRows(**out)


class DenseRows(NamedTuple):
    """Packed ``[rows, slots]`` steps that hold their observations (episodes whose observations
    cannot be re-rendered from a few integers, such as the ant's)."""

    obs: Any  # [R, S, obs_size] float32, o_t
    next_obs: Any  # [R, S, obs_size] float32, o_{t+1}
    actions: Any  # [R, S, A] float32
    mask: Any  # [R, S] bool
    segments: Any  # [R, S] int, which episode of the row (NO_SEGMENT for padding)
    subgoals: Any  # [R, S] int, analysis labels only
    episode: Any  # [R, S] int, index in the source dataset (-1 for padding)

    @property
    def num_rows(self) -> int:
        return self.actions.shape[0]


def pack_dense(episodes: Any, capacity: int) -> DenseRows:
    """Packs host episodes that store observations (``obs [N, T+1, obs_size]``, ``actions
    [N, T, A]``, the ant's) into rows of ``capacity`` slots, like ``pack``."""
    lengths = np.asarray(episodes.mask).sum(axis=1)
    rows = first_fit(lengths, capacity)
    r, obs_size = len(rows), episodes.obs.shape[-1]
    out = {"obs": np.zeros((r, capacity, obs_size), np.float32),
           "next_obs": np.zeros((r, capacity, obs_size), np.float32),
           "actions": np.zeros((r, capacity) + episodes.actions.shape[2:], np.float32),
           "mask": np.zeros((r, capacity), bool),
           "segments": np.full((r, capacity), NO_SEGMENT, np.int16),
           "subgoals": np.zeros((r, capacity), np.int16),
           "episode": np.full((r, capacity), -1, np.int32)}
    for row, members in enumerate(rows):
        start = 0
        for segment, i in enumerate(members):
            n = int(lengths[i])
            span = slice(start, start + n)
            out["obs"][row, span] = episodes.obs[i, :n]
            out["next_obs"][row, span] = episodes.obs[i, 1:n + 1]
            out["actions"][row, span] = episodes.actions[i, :n]
            out["mask"][row, span] = True
            out["segments"][row, span] = segment
            out["subgoals"][row, span] = episodes.subgoals[i, :n]
            out["episode"][row, span] = i
            start += n
    return DenseRows(**out)


def sample_batch(rows: PackedRows, key: jax.Array, batch_size: int) -> PackedRows:
    """``batch_size`` rows drawn uniformly with replacement (every learner's batch). Jittable."""
    index = jax.random.randint(key, (batch_size,), 0, rows.num_rows)
    return jax.tree.map(lambda a: a[index], rows)


def steps_into_subgoal(rows: PackedRows) -> jax.Array:
    """``[B, T]`` int: steps since the step's subgoal began (0 at a subgoal's first step, at an
    episode's start and where a packed row's next episode starts)."""
    subgoals = jnp.asarray(rows.subgoals, jnp.int32)
    segments = jnp.asarray(rows.segments, jnp.int32)
    change = jnp.concatenate(
        [jnp.ones_like(subgoals[:, :1], bool),
         (subgoals[:, 1:] != subgoals[:, :-1]) | (segments[:, 1:] != segments[:, :-1])], axis=1)
    t = jnp.broadcast_to(jnp.arange(subgoals.shape[1]), subgoals.shape)
    return t - jax.lax.cummax(jnp.where(change, t, 0), axis=1)


def rotate(rows: PackedRows, quarter_turns: jax.Array, grid_size: int) -> PackedRows:
    """``rows`` in a world turned clockwise by ``quarter_turns [R]`` (0-3) right angles per row:
    every cell (r, c) -> (c, G-1-r) per turn, and each action the move that goes the turned way
    (``gridworld.ACTION_DELTAS`` in clockwise order: a -> a + 1 mod 4). Layouts are drawn
    uniformly and the expert breaks ties at random, so a turned episode is as likely an expert
    episode as its original. Cells below 0 (none) stay. Jittable."""
    k = jnp.asarray(quarter_turns, jnp.int32)

    def turn(cells):
        cells = jnp.asarray(cells, jnp.int32)
        kk = k.reshape(k.shape + (1,) * (cells.ndim - 1))
        r, c = cells // grid_size, cells % grid_size
        for n in range(1, 4):  # r, c after n turns, picked per row
            r, c = jnp.where(kk >= n, c, r), jnp.where(kk >= n, grid_size - 1 - r, c)
        return jnp.where(cells >= 0, r * grid_size + c, cells)

    actions = jnp.asarray(rows.actions, jnp.int32)
    return rows._replace(agent_cells=turn(rows.agent_cells), next_cells=turn(rows.next_cells),
                         object_cells=turn(rows.object_cells), wall_cells=turn(rows.wall_cells),
                         actions=jnp.where(actions >= 0, (actions + k[:, None]) % 4, actions))


def subgoal_segments(rows: PackedRows) -> jax.Array:
    """``[B, T]`` int: an id per subgoal segment (a new one at each subgoal change and each packed
    episode), so attention restricted to equal ids sees only the current subgoal's steps: the
    training-time match of ``analysis.rollout.rollout``'s ``forget``."""
    return jnp.cumsum(steps_into_subgoal(rows) == 0, axis=1)


def forgetting_segments(rows: PackedRows, forget: str) -> tuple[jax.Array, jax.Array]:
    """``(lower, upper)`` ``[B, T]`` segment ids for the blocks below and above the controlled
    layer under ``forget`` (``backbone.FORGET``): ``subgoal_segments`` for the blocks that
    forget the history at each subgoal change, the episodes' own ``rows.segments`` for the rest."""
    forgets_lower, forgets_upper = backbone.forgetting(forget)
    scoped = subgoal_segments(rows) if forgets_lower or forgets_upper else rows.segments
    return (scoped if forgets_lower else rows.segments, scoped if forgets_upper else rows.segments)


def observations(rows: PackedRows | DenseRows, params: Any) -> tuple[jax.Array, jax.Array]:
    """``(obs, next_obs)``, each ``[R, S, obs_size]`` float32, rendered per slot. Jittable."""
    if isinstance(rows, DenseRows):
        return jnp.asarray(rows.obs, jnp.float32), jnp.asarray(rows.next_obs, jnp.float32)
    render = jax.vmap(jax.vmap(gridworld.render, in_axes=(0, 0, 0, None)),
                      in_axes=(0, 0, 0, None))
    objects = jnp.asarray(rows.object_cells, jnp.int32)
    walls = jnp.asarray(rows.wall_cells, jnp.int32)
    obs = render(jnp.asarray(rows.agent_cells, jnp.int32), objects, walls, params)
    next_obs = render(jnp.asarray(rows.next_cells, jnp.int32), objects, walls, params)
    return obs, next_obs
