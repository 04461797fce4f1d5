"""ant-pinpad (App. A.2): the MuJoCo ant walking over a G x G pinpad of logical cells.

The ant (8 joint torques) walks on a plane divided into G x G square cells of side ``cell_size``.
O cells are uniquely coloured (colours 0..O-1) and W cells are walls; cells and walls exist only in
this module's bookkeeping (the MJCF is the stock brax ant, the same for every layout), so layouts
are sampled per episode without recompiling. A task is a sequence of colours to visit in order;
unlike the gridworld, each subgoal is a single colour. The visiting rules are the gridworld's: a
coloured cell is visited when the torso centre moves into it from another cell; the next colour of
the task advances the task, any other colour ends the episode with reward 0, and completing the
task ends it with reward 1.

Geometry: the grid is centred on the world origin and spans ``[-L/2, L/2]^2`` with
``L = grid_size * cell_size``. Cells are addressed as in the gridworld, ``cell = row * G + col``,
with columns along world +x and rows along world -y: row 0 is the top (largest y), so the
gridworld's "up" (``ACTION_DELTAS[0] = (-1, 0)``) is world +y and "right" is world +x
(``DIRECTION_VECTORS``).

Observation (``obs_size`` float32, the task is not observed), in this order:
  ``proprio``   [proprio_size = 27] symlog of (qpos without the torso's global x, y: height,
                orientation quaternion (w, x, y, z), 8 joint angles) ‖ qvel (14);
  ``xy``        [2] torso x, y divided by L/2 (in [-1, 1] on the grid);
  ``objects``   [2 * O] centre of colour c's cell minus torso x, y, divided by L, by colour;
  ``walls``     [2 * W] the same for the wall cells;
  ``local``     [2] torso x, y within its cell, in [-1, 1]^2 (-1 at the cell's left/bottom edge).
``observation_slices`` names these ranges.

Physics is brax's MJX pipeline for its 'ant' environment (dt = 0.05 s, five 0.01 s frames); one
instance is built per process (``brax_env``). Everything else is a pure function: ``reset`` and
``step`` jit, vmap and scan.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct

from hrl_internal.envs.gridworld import ACTION_DELTAS

# Table A2: the 16 pretraining tasks, each three single-colour subgoals.
PRETRAIN_TASKS: tuple[tuple[int, ...], ...] = tuple(
    tuple(int(c) for c in task.split("-"))
    for task in (
        "0-3-2", "1-0-3", "2-1-0", "3-2-1", "0-2-0", "0-2-1", "0-3-1", "1-0-2",
        "1-3-1", "1-3-2", "2-0-2", "2-0-3", "2-1-3", "3-1-0", "3-1-3", "3-2-0",
    )
)
# The post-training task: all four colours in order (§A.2).
POSTTRAIN_TASKS: tuple[tuple[int, ...], ...] = ((0, 1, 2, 3),)
# One colour each: where a steered model goes first (analysis).
SINGLE_TASKS: tuple[tuple[int, ...], ...] = ((0,), (1,), (2,), (3,))

TASK_SETS: dict[str, tuple[tuple[int, ...], ...]] = {
    "pretrain": PRETRAIN_TASKS,
    "posttrain": POSTTRAIN_TASKS,
    "single": SINGLE_TASKS,
}

ACTION_SIZE = 8
NO_TASK = -1  # padding in the task array
# World-frame (x, y) unit vectors of the gridworld's moves (up, right, down, left): rows grow
# towards -y, columns towards +x.
DIRECTION_VECTORS: tuple[tuple[float, float], ...] = tuple(
    (float(d_col), float(-d_row)) for d_row, d_col in ACTION_DELTAS)
# The stock brax ant: free joint (x, y, z, quaternion) + 8 hinges; 6 + 8 velocities.
NUM_QPOS = 15
NUM_QVEL = 14
# The start point keeps this fraction of the cell side from every edge, so the first steps cannot
# leave the start cell by the initial noise alone.
START_MARGIN = 0.25

# ``AntState.termination``: why the episode ended. When several hold at one step the first in this
# order is reported (a colour reached at the same step the ant falls still counts as reached).
RUNNING, SUCCESS, WRONG_COLOUR, WALL, OFF_GRID, HEIGHT, TIME_LIMIT = range(7)
TERMINATIONS = ("running", "success", "wrong_colour", "wall", "off_grid", "height", "time_limit")


@dataclasses.dataclass(frozen=True)
class AntEnvParams:
    """Static environment parameters: they fix array shapes, so jit treats them as constants.

    Hashable, so they may be closed over or passed as a static argument.
    """

    grid_size: int = 4
    num_objects: int = 4
    num_walls: int = 1
    max_steps: int = 500
    # Metres per cell side; the grid is centred on the origin and spans [-L/2, L/2]^2, L = G * cell.
    cell_size: float = 1.0
    # A named set of TASK_SETS, or one task written as its colours, e.g. "0-1-2-3".
    task_set: str = "pretrain"
    # Joint angles (around the default pose) and all velocities start uniform in ±init_noise.
    init_noise: float = 0.1
    # The episode ends when the torso height leaves [min_height, max_height] (the ant fell or flew).
    min_height: float = 0.2
    max_height: float = 1.0
    # Resample layouts until every leg of the task can be walked on the grid without crossing a
    # wall or another colour (as the gridworld's solvable_only; with 16 cells and 1 wall a few
    # percent of layouts fence a target in).
    solvable_only: bool = True
    # Bound on resampling; a layout still unsolvable after this many draws is kept.
    max_layout_draws: int = 64
    # False: a wrong colour, a wall cell or leaving the grid no longer ends the episode (reward 0
    # still; only success, height and the time limit end it). The expert learns to walk under
    # this rule first: under the full rules a jittering ant leaves its start cell within ~30
    # steps, so early episodes are too short to learn a gait from.
    end_on_violation: bool = True

    @property
    def num_cells(self) -> int:
        return self.grid_size * self.grid_size

    @property
    def side_length(self) -> float:
        """L, the grid's side in metres."""
        return self.grid_size * self.cell_size

    @property
    def proprio_size(self) -> int:
        return NUM_QPOS - 2 + NUM_QVEL

    @property
    def obs_size(self) -> int:
        return self.proprio_size + 2 + 2 * self.num_objects + 2 * self.num_walls + 2

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
        for name in ("grid_size", "num_objects", "num_walls", "max_steps", "max_layout_draws"):
            if getattr(self, name) < (0 if name == "num_walls" else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.cell_size > 0:
            raise ValueError(f"cell_size must be positive, got {self.cell_size}")
        if not self.init_noise >= 0:
            raise ValueError(f"init_noise must be >= 0, got {self.init_noise}")
        if not 0 <= self.min_height < self.max_height:
            raise ValueError(f"min_height must be in [0, max_height = {self.max_height}), got "
                             f"{self.min_height}")
        if self.task_set not in TASK_SETS:
            try:
                parse_task(self.task_set)
            except ValueError:
                raise ValueError(f"task_set must be one of {sorted(TASK_SETS)} or colours joined "
                                 f"by '-' with no colour twice in a row (e.g. '0-1-2-3'), got "
                                 f"{self.task_set!r}") from None
        if self.num_objects + self.num_walls + 1 > self.num_cells:
            raise ValueError(
                f"num_objects + num_walls + 1 = {self.num_objects + self.num_walls + 1} must fit "
                f"in grid_size**2 = {self.num_cells} cells"
            )
        needed = max(max(t) for t in self.tasks) + 1
        if self.num_objects < needed:
            raise ValueError(
                f"num_objects must be >= {needed} for task_set {self.task_set!r}, "
                f"got {self.num_objects}"
            )


@struct.dataclass
class AntState:
    """One environment's state. Shapes for a single env (vmap adds a leading batch axis)."""

    pipeline_state: Any  # brax.mjx.base.State: q [15] = qpos, qd [14] = qvel, ...
    object_cells: jax.Array  # [num_objects] int32, the cell of colour c at index c
    wall_cells: jax.Array  # [num_walls] int32
    task: jax.Array  # [max_task_len] int32, colours to visit, padded with NO_TASK
    task_len: jax.Array  # [] int32
    task_id: jax.Array  # [] int32, index into params.tasks
    progress: jax.Array  # [] int32, how many colours of the task are visited
    cell: jax.Array  # [] int32, the cell holding the torso centre (nearest cell once off the grid)
    t: jax.Array  # [] int32, steps taken
    reward: jax.Array  # [] float32, reward of the last step (0 when stepping a finished episode)
    done: jax.Array  # [] bool
    success: jax.Array  # [] bool
    termination: jax.Array  # [] int32, index into TERMINATIONS (RUNNING while not done)
    # [] bool, the last step entered a wrong colour or a wall cell, or left the grid: what ends
    # the episode under end_on_violation, recorded (once per breach) under either rule.
    violation: jax.Array


def parse_task(text: str) -> tuple[int, ...]:
    """``"0-1-2-3"`` -> ``(0, 1, 2, 3)``: non-negative colours, none twice in a row.

    A colour cannot follow itself: the ant stands on it when it becomes the target, and the
    shortest-path direction there would be undefined.
    """
    try:
        colours = tuple(int(c) for c in text.split("-"))
    except ValueError:
        raise ValueError(f"not a task of colours: {text!r}") from None
    if min(colours) < 0 or any(a == b for a, b in zip(colours, colours[1:])):
        raise ValueError(f"not a task of colours: {text!r}")
    return colours


def task_array(params: AntEnvParams) -> jax.Array:
    """The task set as ``[num_tasks, max_task_len]`` int32, padded with NO_TASK."""
    rows = [list(t) + [NO_TASK] * (params.max_task_len - len(t)) for t in params.tasks]
    return jnp.asarray(rows, dtype=jnp.int32)


@functools.lru_cache(maxsize=None)
def brax_env():
    """The brax 'ant' PipelineEnv on the MJX backend, built once per process."""
    from brax import envs  # imported here: brax's import is slow and only the ant needs it

    # Built eagerly even when first asked for inside a trace: the cached system must hold concrete
    # arrays, not tracers of whichever function happened to build it.
    with warnings.catch_warnings(), jax.ensure_compile_time_eval():
        warnings.simplefilter("ignore", UserWarning)  # brax's maintenance notice on every load
        env = envs.get_environment("ant", backend="mjx")
    if (env.sys.q_size(), env.sys.qd_size(), env.action_size) != (NUM_QPOS, NUM_QVEL, ACTION_SIZE):
        raise RuntimeError(f"unexpected brax ant: nq={env.sys.q_size()}, nv={env.sys.qd_size()}, "
                           f"actuators={env.action_size}")
    return env


def symlog(x: jax.Array) -> jax.Array:
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def cell_centres(params: AntEnvParams) -> jax.Array:
    """``[num_cells, 2]`` float32 world (x, y) of every cell's centre."""
    g, c = params.grid_size, params.cell_size
    row, col = jnp.divmod(jnp.arange(params.num_cells), g)
    half = params.side_length / 2
    return jnp.stack([(col + 0.5) * c - half, half - (row + 0.5) * c], axis=-1).astype(jnp.float32)


def cell_of(xy: jax.Array, params: AntEnvParams) -> tuple[jax.Array, jax.Array]:
    """World ``xy [2]`` -> ``(cell [] int32, inside [] bool)``; off the grid, the nearest cell."""
    half = params.side_length / 2
    col = jnp.floor((xy[0] + half) / params.cell_size).astype(jnp.int32)
    row = jnp.floor((half - xy[1]) / params.cell_size).astype(jnp.int32)
    g = params.grid_size
    inside = (row >= 0) & (row < g) & (col >= 0) & (col < g)
    return jnp.clip(row, 0, g - 1) * g + jnp.clip(col, 0, g - 1), inside


def _neighbour_values(values: jax.Array, fill: Any, params: AntEnvParams) -> jax.Array:
    """``values [num_cells]`` -> ``[num_cells, 4]``: the value one move away in each of
    ACTION_DELTAS' directions, ``fill`` off the grid."""
    g = params.grid_size
    padded = jnp.pad(values.reshape(g, g), 1, constant_values=fill)
    return jnp.stack([padded[1 + dr:1 + dr + g, 1 + dc:1 + dc + g] for dr, dc in ACTION_DELTAS],
                     axis=-1).reshape(params.num_cells, len(ACTION_DELTAS))


def distance_field(target: jax.Array, blocked: jax.Array, params: AntEnvParams) -> jax.Array:
    """``[num_cells]`` int32 grid-level shortest-path length from every cell to ``target``.

    Paths move between cardinal neighbours and enter only unblocked cells (the target never counts
    as blocked); blocked cells themselves get ``num_cells`` (unreachable), as do cells fenced off.
    Bellman-Ford relaxation: num_cells - 1 sweeps bound any shortest path on the grid.
    """
    n = params.num_cells
    is_target = jnp.arange(n) == target
    blocked = blocked & ~is_target

    def relax(_, dist):
        through = jnp.minimum(jnp.min(_neighbour_values(dist, n, params), axis=-1) + 1, n)
        return jnp.where(is_target, 0, jnp.where(blocked, n, jnp.minimum(dist, through)))

    return jax.lax.fori_loop(0, n - 1, relax, jnp.where(is_target, 0, n).astype(jnp.int32))


def blocked_cells(object_cells: jax.Array, wall_cells: jax.Array, target_colour: jax.Array,
                  params: AntEnvParams) -> jax.Array:
    """``[num_cells]`` bool: walls and every coloured cell but the target (entering either ends
    the episode)."""
    n = params.num_cells
    is_wall = jnp.zeros((n,), bool).at[wall_cells].set(True)
    others = jnp.arange(params.num_objects) != target_colour
    return is_wall | jnp.zeros((n,), bool).at[object_cells].max(others)


def _first_moves(object_cells: jax.Array, wall_cells: jax.Array, colour: jax.Array,
                 params: AntEnvParams) -> tuple[jax.Array, jax.Array]:
    """``(best [num_cells] int32 move, reachable [num_cells] bool)`` towards ``colour``'s cell.

    A cell may be left even if it is blocked (the ant stands on the colour it just visited), but
    paths only enter unblocked cells. Among equally short moves the first of (up, right, down,
    left) is taken, so the field is deterministic. ``reachable`` is False at the target itself.
    """
    n = params.num_cells
    target = object_cells[colour]
    dist = distance_field(target, blocked_cells(object_cells, wall_cells, colour, params), params)
    ahead = _neighbour_values(dist, n, params)
    reachable = (jnp.min(ahead, axis=-1) < n) & (jnp.arange(n) != target)
    return jnp.argmin(ahead, axis=-1).astype(jnp.int32), reachable


def legs_reachable(object_cells: jax.Array, wall_cells: jax.Array, start_cell: jax.Array,
                   task: jax.Array, params: AntEnvParams) -> jax.Array:
    """[] bool: every leg of ``task`` (from the start, then from each target) can be walked."""
    colours = jnp.maximum(task, 0)
    starts = jnp.concatenate([start_cell[None], object_cells[colours][:-1]])

    def leg(start, colour):
        return _first_moves(object_cells, wall_cells, colour, params)[1][start]

    return jnp.all(jax.vmap(leg)(starts, colours) | (task == NO_TASK))


def current_subgoal(state: AntState) -> jax.Array:
    """[] int32 colour the ant must visit next (the task's last colour once it is done)."""
    return state.task[jnp.minimum(state.progress, state.task_len - 1)]


def initial_pose(key: jax.Array, cell: jax.Array, params: AntEnvParams
                 ) -> tuple[jax.Array, jax.Array]:
    """``(qpos [15], qvel [14])`` of a start in ``cell`` (§A.2).

    The torso is at a uniform point of the cell at least START_MARGIN cell sides from its edges,
    at the default height with a uniform random yaw; joint angles are the default pose's plus
    uniform ±init_noise, and every velocity is uniform in ±init_noise.
    """
    xy_key, yaw_key, joint_key, vel_key = jax.random.split(key, 4)
    init_q = jnp.asarray(brax_env().sys.init_q, jnp.float32)
    span = params.cell_size * (0.5 - START_MARGIN)
    xy = cell_centres(params)[cell] + jax.random.uniform(xy_key, (2,), minval=-span, maxval=span)
    yaw = jax.random.uniform(yaw_key, (), minval=-math.pi, maxval=math.pi)
    quat = jnp.stack([jnp.cos(yaw / 2), 0.0, 0.0, jnp.sin(yaw / 2)])
    noise = params.init_noise
    joints = init_q[7:] + jax.random.uniform(joint_key, (NUM_QPOS - 7,), minval=-noise,
                                             maxval=noise)
    qpos = jnp.concatenate([xy, init_q[2:3], quat, joints])
    qvel = jax.random.uniform(vel_key, (NUM_QVEL,), minval=-noise, maxval=noise)
    return qpos, qvel


def initial_state(pipeline_state: Any, object_cells: jax.Array, wall_cells: jax.Array,
                  task_id: jax.Array, params: AntEnvParams) -> AntState:
    """The state at the start of an episode with this physics state, layout and task."""
    task = task_array(params)[task_id]
    cell, _ = cell_of(pipeline_state.q[:2], params)
    return AntState(
        pipeline_state=pipeline_state,
        object_cells=jnp.asarray(object_cells, jnp.int32),
        wall_cells=jnp.asarray(wall_cells, jnp.int32),
        task=task,
        task_len=jnp.sum(task != NO_TASK).astype(jnp.int32),
        task_id=jnp.asarray(task_id, jnp.int32),
        progress=jnp.zeros((), jnp.int32),
        cell=cell,
        t=jnp.zeros((), jnp.int32),
        reward=jnp.zeros((), jnp.float32),
        done=jnp.zeros((), bool),
        success=jnp.zeros((), bool),
        termination=jnp.int32(RUNNING),
        violation=jnp.zeros((), bool),
    )


def sample_layout(key: jax.Array, task: jax.Array, params: AntEnvParams
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(object_cells [O], wall_cells [W], start_cell [])``, all distinct cells.

    With ``solvable_only``, redrawn until every leg of ``task [max_task_len]`` is walkable.
    """
    o, w = params.num_objects, params.num_walls

    def draw(k):
        cells = jax.random.permutation(k, params.num_cells).astype(jnp.int32)
        return cells[:o], cells[o:o + w], cells[o + w]

    layout = draw(key)
    if params.solvable_only:
        def unsolvable(carry):
            _, draws, lay = carry
            return ~legs_reachable(*lay, task, params) & (draws < params.max_layout_draws)

        def redraw(carry):
            k, draws, _ = carry
            k, sub = jax.random.split(k)
            return k, draws + 1, draw(sub)

        _, _, layout = jax.lax.while_loop(unsolvable, redraw, (key, 1, layout))
    return layout


# Jitted on their own (params static) so that every program that resets or steps the ant reuses
# one traced jaxpr per process: tracing MJX's init takes seconds, and a training program calls
# reset and step from several places (start, restarts, under vmap and scan).
@functools.partial(jax.jit, static_argnames=("params",))
def reset(key: jax.Array, params: AntEnvParams, task_id: jax.Array | None = None) -> AntState:
    """Samples a task (uniformly from the task set unless ``task_id`` is given), a layout and a
    start pose in the start cell. Objects, wall and start cell never overlap."""
    params.validate()
    task_key, layout_key, pose_key = jax.random.split(key, 3)
    if task_id is None:
        task_id = jax.random.randint(task_key, (), 0, params.num_tasks)
    task_id = jnp.asarray(task_id, jnp.int32)
    object_cells, wall_cells, start_cell = sample_layout(
        layout_key, task_array(params)[task_id], params)
    qpos, qvel = initial_pose(pose_key, start_cell, params)
    pipeline_state = brax_env().pipeline_init(qpos, qvel)
    return initial_state(pipeline_state, object_cells, wall_cells, task_id, params)


@functools.partial(jax.jit, static_argnames=("params",))
def step(state: AntState, action: jax.Array, params: AntEnvParams) -> AntState:
    """One control step (0.05 s) of ``action [8]`` torques, clipped to the actuators' [-1, 1].

    Then the visiting rules, in the gridworld's order. The episode also ends (reward 0) when the
    torso centre enters a wall cell, when it leaves the grid (the paper's plane has no border; we
    end the episode there rather than let the ant wander where no cell or observation is defined),
    when the torso height leaves [min_height, max_height], and at max_steps.
    A finished episode is absorbing: stepping it changes nothing except that the reward is 0.
    """
    chex.assert_shape(action, (ACTION_SIZE,))
    physics = brax_env().pipeline_step(state.pipeline_state, jnp.clip(action, -1.0, 1.0))
    return apply_rules(state, physics, params)


def apply_rules(state: AntState, physics: Any, params: AntEnvParams) -> AntState:
    """The state after a step from ``state`` whose physics ended in ``physics`` (see ``step``).

    Split from the physics so the rules can be checked on states no policy could reach.
    """
    cell, inside = cell_of(physics.q[:2], params)
    _, was_inside = cell_of(state.pipeline_state.q[:2], params)
    entered = inside & (cell != state.cell)

    hit = state.object_cells == cell  # [O]
    visited = entered & jnp.any(hit)
    colour = jnp.argmax(hit)
    correct = visited & (colour == current_subgoal(state))
    wrong = visited & ~correct
    progress = state.progress + correct.astype(jnp.int32)
    success = correct & (progress == state.task_len)
    wall = inside & jnp.any(state.wall_cells == cell)
    height = physics.q[2]
    fell = (height < params.min_height) | (height > params.max_height)
    t = state.t + 1
    strict = params.end_on_violation
    causes = jnp.stack([success, wrong & strict, wall & strict, ~inside & strict, fell,
                        t >= params.max_steps])
    done = jnp.any(causes)
    termination = jnp.where(done, jnp.argmax(causes) + 1, RUNNING).astype(jnp.int32)

    new_state = state.replace(
        pipeline_state=physics, progress=progress, cell=cell, t=t,
        reward=success.astype(jnp.float32), done=done, success=success,
        termination=termination, violation=wrong | (wall & entered) | (was_inside & ~inside))
    frozen = state.replace(reward=jnp.zeros((), jnp.float32), violation=jnp.zeros((), bool))
    return jax.tree.map(lambda old, new: jnp.where(state.done, old, new), frozen, new_state)


def observation_slices(params: AntEnvParams) -> dict[str, slice]:
    """Where each part of the observation lies (see the module docstring)."""
    sizes = {"proprio": params.proprio_size, "xy": 2, "objects": 2 * params.num_objects,
             "walls": 2 * params.num_walls, "local": 2}
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = slice(start, start + size)
        start += size
    return out


def observe(state: AntState, params: AntEnvParams) -> jax.Array:
    """``[obs_size]`` float32 (layout in the module docstring). The task is not observed."""
    q = state.pipeline_state.q.astype(jnp.float32)
    qd = state.pipeline_state.qd.astype(jnp.float32)
    xy = q[:2]
    centres = cell_centres(params)
    side = params.side_length
    obs = jnp.concatenate([
        symlog(jnp.concatenate([q[2:], qd])),
        xy / (side / 2),
        ((centres[state.object_cells] - xy) / side).reshape(-1),
        ((centres[state.wall_cells] - xy) / side).reshape(-1),
        (xy - centres[state.cell]) / (params.cell_size / 2),
    ])
    chex.assert_shape(obs, (params.obs_size,))
    return obs


def shortest_path_directions(state: AntState, params: AntEnvParams) -> jax.Array:
    """``[num_cells, 4]`` float32 one-hot over (up, right, down, left) = world (+y, +x, -y, -x):
    the first move of a grid-level shortest path from each cell to the current target colour's
    cell that enters neither a wall nor another colour. Rows are zero at the target, at wall
    cells and where the target cannot be reached. Ties go to the first move in that order."""
    best, reachable = _first_moves(state.object_cells, state.wall_cells, current_subgoal(state),
                                   params)
    is_wall = jnp.zeros((params.num_cells,), bool).at[state.wall_cells].set(True)
    one_hot = jax.nn.one_hot(best, len(ACTION_DELTAS), dtype=jnp.float32)
    return one_hot * (reachable & ~is_wall)[:, None]


def target_direction(state: AntState, params: AntEnvParams) -> jax.Array:
    """``[2]`` world (x, y) unit vector of the shortest-path move at the ant's cell (zero if none).

    The expert's intrinsic reward is ``torso_velocity · target_direction``.
    """
    return shortest_path_directions(state, params)[state.cell] @ jnp.asarray(
        DIRECTION_VECTORS, jnp.float32)


def torso_velocity(state: AntState) -> jax.Array:
    """``[2]`` world-frame x, y velocity of the torso (the free joint's linear qvel is global)."""
    return state.pipeline_state.qd[:2].astype(jnp.float32)
