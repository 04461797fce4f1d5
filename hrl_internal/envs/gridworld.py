"""gridworld-pinpad (App. A.1): a pure-JAX hierarchical navigation task.

A G x G grid holds O uniquely coloured cells (colours 0..O-1), W wall cells and the agent. A task is
a sequence of colours to visit in order; the subgoals are the colour pairs (0-1, 2-3, ...). The
episode ends with reward 1 when the task is completed, with reward 0 when the agent visits a
coloured cell that is not the next one in the task, and at the time limit T.

Cells are addressed by a flat index ``cell = row * G + col``. Everything here is a pure function of
its inputs: ``reset`` and ``step`` jit and vmap over any number of environments.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct

# Table A1: the 16 pretraining tasks, each three subgoals (colour pairs).
PRETRAIN_TASKS: tuple[tuple[int, ...], ...] = tuple(
    tuple(int(c) for c in task.split("-"))
    for task in (
        "0-1-4-5-0-1", "0-1-4-5-2-3", "0-1-6-7-2-3", "2-3-0-1-4-5",
        "2-3-6-7-2-3", "2-3-6-7-4-5", "4-5-0-1-4-5", "4-5-0-1-6-7",
        "4-5-2-3-6-7", "6-7-2-3-0-1", "6-7-2-3-6-7", "6-7-4-5-0-1",
        "0-1-6-7-4-5", "2-3-0-1-6-7", "4-5-2-3-0-1", "6-7-4-5-2-3",
    )
)
# The post-training task: six subgoals whose transitions 01->23, 23->45, 45->67, 67->01 never
# occur in pretraining (length and compositional generalisation).
POSTTRAIN_TASKS: tuple[tuple[int, ...], ...] = ((0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3),)

# Single subgoals, one task per colour pair: where a steered model goes first (analysis).
PAIR_TASKS: tuple[tuple[int, ...], ...] = ((0, 1), (2, 3), (4, 5), (6, 7))

TASK_SETS: dict[str, tuple[tuple[int, ...], ...]] = {
    "pretrain": PRETRAIN_TASKS,
    "posttrain": POSTTRAIN_TASKS,
    "pairs": PAIR_TASKS,
}

NUM_ACTIONS = 4
# Cardinal moves as (d_row, d_col): up, right, down, left.
ACTION_DELTAS = ((-1, 0), (0, 1), (1, 0), (0, -1))
COLOURS_PER_SUBGOAL = 2
NO_TASK = -1  # padding in the task array


@dataclasses.dataclass(frozen=True)
class EnvParams:
    """Static environment parameters: they fix array shapes, so jit treats them as constants.

    Hashable, so they may be closed over or passed as a static argument.
    """

    grid_size: int = 7
    num_objects: int = 8
    num_walls: int = 4
    max_steps: int = 100
    # A named set of TASK_SETS, or one task written as its colours, e.g. "0-1-2-3".
    task_set: str = "pretrain"
    # Resample layouts until the shortest solution of the sampled task fits within max_steps, so
    # every episode is solvable: unfiltered, 15% (pretraining tasks) and 19% (post-training task)
    # of layouts wall a target in or need more than T steps, which would only cap success rates.
    solvable_only: bool = True
    # Bound on resampling; a layout still unsolvable after this many draws is kept (crowded grids).
    max_layout_draws: int = 64

    @property
    def num_cells(self) -> int:
        return self.grid_size * self.grid_size

    @property
    def num_channels(self) -> int:
        """Per-cell one-hot: wall_1..wall_W, object_1..object_O, agent."""
        return self.num_walls + self.num_objects + 1

    @property
    def obs_size(self) -> int:
        return self.num_cells * self.num_channels

    @property
    def tasks(self) -> tuple[tuple[int, ...], ...]:
        if self.task_set in TASK_SETS:
            return TASK_SETS[self.task_set]
        return (parse_task(self.task_set),)

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def max_task_len(self) -> int:
        return max(len(t) for t in self.tasks)

    def validate(self) -> None:
        """Raises ValueError naming the field at fault."""
        for name in ("grid_size", "num_objects", "num_walls", "max_steps"):
            if getattr(self, name) < (0 if name == "num_walls" else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.task_set not in TASK_SETS:
            try:
                parse_task(self.task_set)
            except ValueError:
                raise ValueError(f"task_set must be one of {sorted(TASK_SETS)} or colours joined by "
                                 f"'-' (an even number, e.g. '0-1-2-3'), got {self.task_set!r}"
                                 ) from None
        if self.num_objects + self.num_walls + 1 > self.num_cells:
            raise ValueError(
                f"num_objects + num_walls + 1 = {self.num_objects + self.num_walls + 1} must fit in "
                f"grid_size**2 = {self.num_cells} cells"
            )
        if self.grid_size > 32:
            raise ValueError(f"grid_size must be <= 32 (rows are 32-bit sets), got {self.grid_size}")
        needed = max(max(t) for t in self.tasks) + 1
        if self.num_objects < needed:
            raise ValueError(
                f"num_objects must be >= {needed} for task_set {self.task_set!r}, got {self.num_objects}"
            )


@struct.dataclass
class EnvState:
    """One environment's state. Shapes for a single env (vmap adds a leading batch axis)."""

    agent_cell: jax.Array  # [] int32
    object_cells: jax.Array  # [num_objects] int32, the cell of colour c at index c
    wall_cells: jax.Array  # [num_walls] int32
    task: jax.Array  # [max_task_len] int32, colours to visit, padded with NO_TASK
    task_len: jax.Array  # [] int32
    task_id: jax.Array  # [] int32, index into the task set
    progress: jax.Array  # [] int32, how many colours of the task are visited
    time: jax.Array  # [] int32
    done: jax.Array  # [] bool
    success: jax.Array  # [] bool


def parse_task(text: str) -> tuple[int, ...]:
    """``"0-1-2-3"`` -> ``(0, 1, 2, 3)``: non-negative colours, whole subgoals (pairs)."""
    colours = tuple(int(c) for c in text.split("-"))
    if not colours or len(colours) % COLOURS_PER_SUBGOAL or min(colours) < 0:
        raise ValueError(f"not a task of colour pairs: {text!r}")
    return colours


def task_array(params: EnvParams) -> jax.Array:
    """The task set as ``[num_tasks, max_task_len]`` int32, padded with NO_TASK."""
    rows = [list(t) + [NO_TASK] * (params.max_task_len - len(t)) for t in params.tasks]
    return jnp.asarray(rows, dtype=jnp.int32)


def subgoal_of_colour(colour: jax.Array) -> jax.Array:
    """Subgoals are the colour pairs 0-1, 2-3, ...: colour c belongs to subgoal c // 2."""
    return colour // COLOURS_PER_SUBGOAL


def move(cell: jax.Array, action: jax.Array, params: EnvParams) -> jax.Array:
    """The cell reached by ``action`` from ``cell`` ignoring walls; off-grid moves stay put."""
    deltas = jnp.asarray(ACTION_DELTAS, dtype=jnp.int32)
    g = params.grid_size
    row, col = cell // g + deltas[action, 0], cell % g + deltas[action, 1]
    inside = (row >= 0) & (row < g) & (col >= 0) & (col < g)
    return jnp.where(inside, row * g + col, cell)


def row_bits(mask: jax.Array, params: EnvParams) -> jax.Array:
    """Packs a ``[num_cells]`` bool mask into ``[grid_size]`` uint32 row bitsets (bit = column)."""
    g = params.grid_size
    weights = jnp.left_shift(jnp.uint32(1), jnp.arange(g, dtype=jnp.uint32))
    return jnp.sum(jnp.where(mask.reshape(g, g), weights, jnp.uint32(0)), axis=1, dtype=jnp.uint32)


def _has_cell(rows: jax.Array, cells: jax.Array, params: EnvParams) -> jax.Array:
    g = params.grid_size
    col = (cells % g).astype(jnp.uint32)
    return (jnp.right_shift(rows[cells // g], col) & jnp.uint32(1)) == 1


def _neighbourhood(rows: jax.Array, params: EnvParams) -> jax.Array:
    """Cells one cardinal move away from any cell of ``rows`` (bitset in, bitset out)."""
    full = jnp.uint32((1 << params.grid_size) - 1)
    zero = jnp.zeros((1,), jnp.uint32)
    sideways = (jnp.left_shift(rows, 1) & full) | jnp.right_shift(rows, 1)
    up_down = jnp.concatenate([rows[1:], zero]) | jnp.concatenate([zero, rows[:-1]])
    return sideways | up_down


def distances_to(target: jax.Array, blocked: jax.Array, queries: jax.Array, params: EnvParams
                 ) -> jax.Array:
    """Shortest-path lengths from each query cell to ``target`` by breadth-first search.

    Paths may only enter unblocked cells (the target never counts as blocked); a blocked query cell
    may still be left, so a route from the colour just visited is measured too. The BFS frontier is
    a bitset per grid row, so one expansion costs a few integer ops per row, and the search stops as
    soon as every query is reached or the reachable set stops growing.

    Args:
      target: [] int32 cell; blocked: [num_cells] bool; queries: [Q] int32 cells.
    Returns:
      [Q] int32 distances, ``unreachable(params)`` where no path exists.
    """
    inf = unreachable(params)
    enterable = row_bits(~blocked.at[target].set(False), params)
    reached0 = row_bits(jnp.arange(params.num_cells) == target, params)
    dist0 = jnp.where(queries == target, 0, inf).astype(jnp.int32)

    def searching(carry):
        _, dist, k, grew = carry
        return grew & jnp.any(dist == inf)

    def expand(carry):
        reached, dist, k, _ = carry
        frontier = _neighbourhood(reached, params)
        # A query is k moves away once a neighbour is k-1 away, whether or not it is enterable.
        dist = jnp.where((dist == inf) & _has_cell(frontier, queries, params), k, dist)
        grown = reached | (frontier & enterable)
        return grown, dist, k + 1, jnp.any(grown != reached)

    _, dist, _, _ = jax.lax.while_loop(
        searching, expand, (reached0, dist0, jnp.int32(1), jnp.bool_(True)))
    return dist


def unreachable(params: EnvParams) -> int:
    """The distance reported for a cell that cannot reach its target."""
    return params.num_cells * 4


def blocked_cells(state: EnvState, target_colour: jax.Array, params: EnvParams) -> jax.Array:
    """``[num_cells]`` bool: walls and every coloured cell except the target (entering ends the episode)."""
    n = params.num_cells
    is_wall = jnp.zeros((n,), bool).at[state.wall_cells].set(True)
    others = jnp.arange(params.num_objects) != target_colour
    is_other_colour = jnp.zeros((n,), bool).at[state.object_cells].max(others)
    return is_wall | is_other_colour


def leg_distances(state: EnvState, params: EnvParams) -> jax.Array:
    """``[max_task_len]`` int32 shortest length of each leg of the task from the start cell.

    Leg k goes from the (k-1)-th target (or the start) to the k-th; padded legs are 0.
    """
    colours = jnp.maximum(state.task, 0)
    targets = state.object_cells[colours]
    starts = jnp.concatenate([state.agent_cell[None], targets[:-1]])

    def leg(start, target, colour):
        return distances_to(target, blocked_cells(state, colour, params), start[None], params)[0]

    dists = jax.vmap(leg)(starts, targets, colours)
    return jnp.where(state.task != NO_TASK, dists, 0)


def observe(state: EnvState, params: EnvParams) -> jax.Array:
    """``[obs_size]`` float32: per cell a one-hot over {wall_1..W, object_1..O, agent}. No task."""
    return render(state.agent_cell, state.object_cells, state.wall_cells, params)


def render(agent_cell: jax.Array, object_cells: jax.Array, wall_cells: jax.Array,
           params: EnvParams) -> jax.Array:
    """The observation from positions alone; datasets store positions and render on load.

    Args:
      agent_cell: [] int; object_cells: [num_objects] int; wall_cells: [num_walls] int.
    Returns:
      [grid_size**2 * num_channels] float32, cell-major.
    """
    n = params.num_cells
    walls = jax.nn.one_hot(wall_cells, n, dtype=jnp.float32).T  # [cells, W]
    objects = jax.nn.one_hot(object_cells, n, dtype=jnp.float32).T  # [cells, O]
    agent = jax.nn.one_hot(agent_cell, n, dtype=jnp.float32)[:, None]  # [cells, 1]
    return jnp.concatenate([walls, objects, agent], axis=1).reshape(-1)


def _sample_layout(key: jax.Array, task_id: jax.Array, params: EnvParams) -> EnvState:
    cells = jax.random.permutation(key, params.num_cells)
    o, w = params.num_objects, params.num_walls
    return layout_state(cells[o + w], cells[:o], cells[o:o + w], task_id, params)


def layout_state(agent_cell: jax.Array, object_cells: jax.Array, wall_cells: jax.Array,
                 task_id: jax.Array, params: EnvParams) -> EnvState:
    """The initial state of a given layout and task (e.g. to replay a recorded episode's start)."""
    task = task_array(params)[task_id]
    return EnvState(
        agent_cell=jnp.asarray(agent_cell, jnp.int32),
        object_cells=jnp.asarray(object_cells, jnp.int32),
        wall_cells=jnp.asarray(wall_cells, jnp.int32),
        task=task,
        task_len=jnp.sum(task != NO_TASK).astype(jnp.int32),
        task_id=jnp.asarray(task_id, jnp.int32),
        progress=jnp.zeros((), jnp.int32),
        time=jnp.zeros((), jnp.int32),
        done=jnp.zeros((), bool),
        success=jnp.zeros((), bool),
    )


def reset(key: jax.Array, params: EnvParams, task_id: jax.Array | None = None
          ) -> tuple[jax.Array, EnvState]:
    """Samples a task (uniformly from the task set unless ``task_id`` is given) and a layout.

    Objects, walls and the start never overlap. Returns ``(obs [obs_size], state)``.
    """
    task_key, layout_key = jax.random.split(key)
    if task_id is None:
        task_id = jax.random.randint(task_key, (), 0, params.num_tasks)
    state = _sample_layout(layout_key, task_id, params)
    if params.solvable_only:
        def unsolvable(carry):
            _, draws, s = carry
            too_long = jnp.sum(leg_distances(s, params)) > params.max_steps
            return too_long & (draws < params.max_layout_draws)

        def resample(carry):
            k, draws, _ = carry
            k, sub = jax.random.split(k)
            return k, draws + 1, _sample_layout(sub, task_id, params)

        _, _, state = jax.lax.while_loop(unsolvable, resample, (layout_key, 1, state))
    return observe(state, params), state


def step(state: EnvState, action: jax.Array, params: EnvParams
         ) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[str, Any]]:
    """Moves the agent and applies the visiting rules.

    A finished episode is absorbing: stepping it changes nothing and yields reward 0.
    Returns ``(obs, state, reward [] f32, done [] bool, info)``; ``info`` holds analysis labels
    (never learner inputs): ``subgoal`` the subgoal now pursued, ``task_index`` the colours visited
    so far, ``subgoal_completed`` whether this step finished a colour pair, ``success``.
    """
    chex.assert_shape(action, ())
    is_wall = jnp.zeros((params.num_cells,), bool).at[state.wall_cells].set(True)
    target = move(state.agent_cell, action, params)
    new_cell = jnp.where(is_wall[target] | state.done, state.agent_cell, target)
    entered = new_cell != state.agent_cell

    hit = state.object_cells == new_cell  # [O]
    visited = entered & jnp.any(hit)
    colour = jnp.argmax(hit)
    next_colour = state.task[jnp.minimum(state.progress, state.task.shape[0] - 1)]
    correct = visited & (colour == next_colour)
    wrong = visited & (colour != next_colour)

    progress = state.progress + correct.astype(jnp.int32)
    success = correct & (progress == state.task_len)
    time = state.time + (~state.done).astype(jnp.int32)
    done = state.done | success | wrong | (time >= params.max_steps)
    new_state = state.replace(agent_cell=new_cell, progress=progress, time=time, done=done,
                              success=state.success | success)
    reward = success.astype(jnp.float32)
    info = {
        "subgoal": current_subgoal(new_state),
        "task_index": progress,
        "subgoal_completed": correct & (progress % COLOURS_PER_SUBGOAL == 0),
        "success": new_state.success,
    }
    return observe(new_state, params), new_state, reward, done, info


def current_subgoal(state: EnvState) -> jax.Array:
    """[] int32 subgoal being pursued (that of the next colour; the last one once the task is done)."""
    idx = jnp.minimum(state.progress, state.task_len - 1)
    return subgoal_of_colour(state.task[idx])
