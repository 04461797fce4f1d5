import collections
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.envs import ant_pinpad as ap
from hrl_internal.envs.gridworld import ACTION_DELTAS

P = ap.AntEnvParams()
G = P.grid_size
N_ENVS, N_STEPS = 64, 12
UP, RIGHT, DOWN, LEFT = range(4)

step = jax.jit(ap.step, static_argnums=2)


def cell(row, col):
    return row * G + col


def centre(c):
    return np.asarray(ap.cell_centres(P)[c])


# Colour 0 top-left, 1 at (0, 2), 2 and 3 fencing in the bottom-right corner; wall at (1, 1).
OBJECTS = [cell(0, 0), cell(0, 2), cell(2, 3), cell(3, 2)]
WALL = cell(1, 1)
START = cell(2, 1)


@pytest.fixture(scope="module")
def batch():
    """One compile of reset and a scanned step, both under jit(vmap)."""
    @jax.jit
    def run(keys, actions):
        states = jax.vmap(ap.reset, in_axes=(0, None))(keys, P)

        def body(s, a):
            s = jax.vmap(ap.step, in_axes=(0, 0, None))(s, a, P)
            return s, (jax.vmap(ap.observe, in_axes=(0, None))(s, P), s.t, s.done)
        return states, jax.lax.scan(body, states, actions)

    keys = jax.random.split(jax.random.PRNGKey(0), N_ENVS)
    actions = jax.random.uniform(jax.random.PRNGKey(1), (N_STEPS, N_ENVS, ap.ACTION_SIZE),
                                 minval=-1, maxval=1)
    starts, (last, trajectory) = run(keys, actions)
    return starts, last, trajectory


def teleport(state, x, y, z=0.55, velocity=(0.0, 0.0)):
    """Puts the torso at (x, y, z) at rest (legs as they were). MJX's step recomputes everything
    from qpos and qvel, so editing those is a complete teleport."""
    ps = state.pipeline_state
    q = ps.q.at[:3].set(jnp.asarray([x, y, z], jnp.float32))
    qd = jnp.zeros_like(ps.qd).at[:2].set(jnp.asarray(velocity, jnp.float32))
    return state.replace(pipeline_state=ps.replace(q=q, qpos=q, qd=qd, qvel=qd))


@pytest.fixture(scope="module")
def scene(batch):
    """A hand-made layout with the torso at rest in the middle of START, task (0, 1, 3)."""
    state = jax.tree.map(lambda a: a[0], batch[0])
    task = jnp.asarray([0, 1, 3], jnp.int32)
    state = state.replace(object_cells=jnp.asarray(OBJECTS, jnp.int32),
                          wall_cells=jnp.asarray([WALL], jnp.int32), task=task,
                          task_len=jnp.int32(3), task_id=jnp.int32(0), cell=jnp.int32(START))
    return teleport(state, *centre(START))


def move_to(state, c):
    """Teleport into the middle of cell ``c`` (state.cell still says where the torso came from)."""
    return teleport(state, *centre(c))


def test_reset_samples_distinct_varied_layouts_and_start_poses(batch):
    starts, _, _ = batch
    start_cells = np.asarray(starts.cell)
    cells = np.concatenate([np.asarray(starts.object_cells), np.asarray(starts.wall_cells),
                            start_cells[:, None]], axis=1)
    assert all(len(set(row)) == P.num_objects + P.num_walls + 1 for row in cells)
    assert len({tuple(row) for row in cells}) > N_ENVS - 3, "layouts vary across keys"
    assert len(set(np.asarray(starts.task_id).tolist())) >= 12
    np.testing.assert_array_equal(starts.task, ap.task_array(P)[starts.task_id])
    q, qd = np.asarray(starts.pipeline_state.q), np.asarray(starts.pipeline_state.qd)
    offset = q[:, :2] - np.asarray(ap.cell_centres(P))[start_cells]
    assert np.all(np.abs(offset) <= P.cell_size * (0.5 - ap.START_MARGIN) + 1e-5)
    assert np.abs(offset).max() > 0.15, "start points spread over the cell"
    yaw = 2 * np.arctan2(q[:, 6], q[:, 3])
    assert np.allclose(q[:, 4:6], 0) and np.allclose(np.linalg.norm(q[:, 3:7], axis=1), 1)
    assert yaw.std() > 1.0, "random yaw"
    init_q = np.asarray(ap.brax_env().sys.init_q)
    assert np.all(np.abs(q[:, 7:] - init_q[7:]) <= P.init_noise + 1e-6)
    assert np.all(np.abs(qd) <= P.init_noise + 1e-6) and np.abs(qd).max() > 0.05
    assert not np.any(starts.done) and np.all(starts.t == 0) and np.all(starts.progress == 0)
    ok = jax.vmap(ap.legs_reachable, in_axes=(0, 0, 0, 0, None))(
        starts.object_cells, starts.wall_cells, starts.cell, starts.task, P)
    assert np.all(ok)


def test_jit_vmap_scan_steps_give_finite_observations(batch):
    starts, last, (obs, t, done) = batch
    assert obs.shape == (N_STEPS, N_ENVS, P.obs_size) and obs.dtype == jnp.float32
    assert P.obs_size == 27 + 2 + 2 * 4 + 2 * 1 + 2 == 41
    assert np.all(np.isfinite(obs))
    # Time advances on live steps only; random torques for 12 steps move the torso a little.
    live = ~np.concatenate([np.zeros((1, N_ENVS), bool), np.asarray(done)[:-1]])
    np.testing.assert_array_equal(np.diff(np.concatenate([np.zeros((1, N_ENVS)), t]), axis=0),
                                  live)
    moved = np.abs(np.asarray(last.pipeline_state.q[:, :2] - starts.pipeline_state.q[:, :2]))
    assert moved.max() > 1e-3


def test_observation_layout(scene):
    x, y = centre(cell(1, 2)) + np.asarray([0.25, -0.4])
    state = teleport(scene, x, y, velocity=(0.3, -0.2)).replace(cell=jnp.int32(cell(1, 2)))
    obs = np.asarray(ap.observe(state, P))
    parts = {k: obs[s] for k, s in ap.observation_slices(P).items()}
    q, qd = np.asarray(state.pipeline_state.q), np.asarray(state.pipeline_state.qd)
    proprio = np.concatenate([q[2:], qd])
    np.testing.assert_allclose(parts["proprio"], np.sign(proprio) * np.log1p(np.abs(proprio)),
                               rtol=1e-6)
    np.testing.assert_allclose(parts["xy"], [x / 2, y / 2], rtol=1e-6)
    rel = (np.asarray([centre(c) for c in OBJECTS]) - [x, y]) / 4
    np.testing.assert_allclose(parts["objects"], rel.reshape(-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(parts["walls"], (centre(WALL) - [x, y]) / 4, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(parts["local"], [0.5, -0.8], rtol=1e-5)
    np.testing.assert_allclose(ap.torso_velocity(state), [0.3, -0.2])
    other_task = state.replace(task=state.task.at[0].set(2))
    np.testing.assert_array_equal(ap.observe(other_task, P), obs)


def test_grid_geometry_up_is_plus_y():
    centres = np.asarray(ap.cell_centres(P))
    assert np.allclose(centres[cell(0, 0)], [-1.5, 1.5]) and np.allclose(centres[cell(3, 3)],
                                                                          [1.5, -1.5])
    for c in range(P.num_cells):
        r, k = divmod(c, G)
        for a, (dr, dk) in enumerate(ACTION_DELTAS):
            if 0 <= r + dr < G and 0 <= k + dk < G:
                np.testing.assert_allclose(centres[cell(r + dr, k + dk)] - centres[c],
                                           P.cell_size * np.asarray(ap.DIRECTION_VECTORS[a]))
    assert ap.DIRECTION_VECTORS[UP] == (0.0, 1.0) and ap.DIRECTION_VECTORS[RIGHT] == (1.0, 0.0)
    c, inside = ap.cell_of(jnp.asarray([-1.9, 1.9]), P)
    assert int(c) == cell(0, 0) and inside
    _, inside = ap.cell_of(jnp.asarray([2.01, 0.0]), P)
    assert not inside


def test_entering_colours_in_order_advances_then_rewards(scene):
    s = step(move_to(scene, OBJECTS[0]), jnp.zeros(8), P)
    assert int(s.cell) == OBJECTS[0] and int(s.progress) == 1 and not s.done and s.reward == 0
    assert int(ap.current_subgoal(s)) == 1
    # Standing on colour 0 (no longer the target) is not a new visit.
    s = step(s, jnp.zeros(8), P)
    assert int(s.progress) == 1 and not s.done and int(s.t) == 2
    s = step(move_to(s, cell(0, 1)), jnp.zeros(8), P)
    s = step(move_to(s, OBJECTS[1]), jnp.zeros(8), P)
    assert int(s.progress) == 2 and not s.done and s.reward == 0
    s = step(move_to(s, cell(1, 2)), jnp.zeros(8), P)
    s = step(move_to(s, OBJECTS[3]), jnp.zeros(8), P)
    assert s.done and s.success and s.reward == 1 and int(s.progress) == 3
    assert int(s.termination) == ap.SUCCESS and int(ap.current_subgoal(s)) == 3


@pytest.mark.parametrize("where,cause", [
    ("wrong_colour", ap.WRONG_COLOUR), ("wall", ap.WALL), ("off_grid", ap.OFF_GRID),
    ("high", ap.HEIGHT), ("low", ap.HEIGHT)])
def test_terminations_without_reward(scene, where, cause):
    x, y = centre(START)
    if where == "low":
        # The contact solver lifts a torso pushed into the floor within one step, so the rule is
        # checked on the physics state directly.
        s = ap.apply_rules(scene, teleport(scene, x, y, z=0.15).pipeline_state, P)
    else:
        state = {
            "wrong_colour": move_to(scene, OBJECTS[1]),  # colour 1 before colour 0
            "wall": move_to(scene, WALL),
            # Just inside the grid's left edge (x = -2), moving out across it.
            "off_grid": teleport(scene, -1.97, y, velocity=(-4.0, 0.0)),
            "high": teleport(scene, x, y, z=1.5),
        }[where]
        s = step(state, jnp.zeros(8), P)
    assert s.done and not s.success and s.reward == 0 and int(s.progress) == 0
    assert int(s.termination) == cause
    alive = step(scene, jnp.zeros(8), P)
    assert not alive.done and int(alive.termination) == ap.RUNNING and not alive.violation
    # Walking rules (the expert's first updates): the same physics breaks a rule but only a
    # fall ends the episode; the broken rule is recorded either way.
    walking = ap.apply_rules(state if where != "low" else scene, s.pipeline_state,
                             dataclasses.replace(P, end_on_violation=False))
    if cause == ap.HEIGHT:
        assert walking.done and int(walking.termination) == ap.HEIGHT and not s.violation
    else:
        assert s.violation and walking.violation and not walking.done
        assert int(walking.termination) == ap.RUNNING and walking.reward == 0


def test_time_limit_and_done_is_frozen(scene):
    s = step(scene.replace(t=jnp.int32(P.max_steps - 2)), jnp.zeros(8), P)
    assert not s.done
    s = step(s, jnp.zeros(8), P)
    assert s.done and not s.success and s.reward == 0 and int(s.termination) == ap.TIME_LIMIT
    won = step(move_to(scene.replace(progress=jnp.int32(2)), OBJECTS[3]), jnp.zeros(8), P)
    assert won.reward == 1
    again = step(won, jnp.ones(8), P)
    assert again.reward == 0 and again.done and again.success
    for a, b in zip(jax.tree.leaves(won.replace(reward=jnp.float32(0))), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)


def python_bfs(start, target, blocked):
    """Reference shortest-path length; moves enter any unblocked cell or the target."""
    dist, queue = {start: 0}, collections.deque([start])
    while queue:
        c = queue.popleft()
        if c == target:
            return dist[c]
        r, k = divmod(c, G)
        for dr, dk in ACTION_DELTAS:
            n = (r + dr) * G + k + dk
            if 0 <= r + dr < G and 0 <= k + dk < G and n not in dist and (
                    n == target or n not in blocked):
                dist[n] = dist[c] + 1
                queue.append(n)
    return None


def test_shortest_path_directions_follow_shortest_paths(scene):
    directions = np.asarray(ap.shortest_path_directions(scene, P))  # target: colour 0 at (0, 0)
    assert directions.shape == (16, 4)
    blocked = {WALL} | set(OBJECTS[1:])
    for c in range(P.num_cells):
        expected = python_bfs(c, OBJECTS[0], blocked)
        if c in (OBJECTS[0], WALL) or expected is None:
            assert directions[c].sum() == 0, c
            continue
        assert directions[c].sum() == 1, c
        walked, here = 0, c  # follow the arrows: each move enters a free cell and gets closer
        while here != OBJECTS[0]:
            r, k = divmod(here, G)
            dr, dk = ACTION_DELTAS[int(directions[here].argmax())]
            here = (r + dr) * G + k + dk
            assert here == OBJECTS[0] or here not in blocked
            walked += 1
            assert walked <= 16
        assert walked == expected, c
    assert directions[cell(3, 3)].sum() == 0, "fenced in by colours 2 and 3"
    assert directions[OBJECTS[1]].argmax() == LEFT, "a colour just visited may be left"
    np.testing.assert_allclose(ap.target_direction(scene.replace(cell=jnp.int32(cell(0, 1))), P),
                               [-1, 0])
    np.testing.assert_allclose(ap.target_direction(scene.replace(cell=jnp.int32(cell(1, 0))), P),
                               [0, 1])
    np.testing.assert_allclose(ap.target_direction(scene.replace(cell=jnp.int32(cell(3, 3))), P),
                               [0, 0])
    # Once colour 0 is visited the field points to colour 1 instead.
    to_one = np.asarray(ap.shortest_path_directions(scene.replace(progress=jnp.int32(1)), P))
    assert to_one[OBJECTS[0]].argmax() == RIGHT and to_one[OBJECTS[1]].sum() == 0


def test_legs_reachable_matches_a_reference_bfs():
    params = ap.AntEnvParams(task_set="posttrain", solvable_only=False)
    keys = jax.random.split(jax.random.PRNGKey(5), 400)
    task = ap.task_array(params)[0]

    @jax.jit
    def sample(keys):
        layouts = jax.vmap(lambda k: ap.sample_layout(k, task, params))(keys)
        return layouts, jax.vmap(ap.legs_reachable, in_axes=(0, 0, 0, None, None))(
            *layouts, task, params)

    (objects, walls, starts), ok = jax.tree.map(np.asarray, sample(keys))
    expected = []
    for i in range(len(keys)):
        here, fine = int(starts[i]), True
        for colour in (0, 1, 2, 3):
            blocked = {int(walls[i, 0])} | {int(c) for j, c in enumerate(objects[i]) if j != colour}
            fine &= python_bfs(here, int(objects[i, colour]), blocked) is not None
            here = int(objects[i, colour])
        expected.append(fine)
    np.testing.assert_array_equal(ok, expected)
    assert 0 < np.mean(~ok) < 0.3, "some unfiltered layouts fence a target in"


# Table A2 of the paper, as printed there (not derived from the code's own list).
TABLE_A2 = ("0-3-2 1-0-3 2-1-0 3-2-1 0-2-0 0-2-1 0-3-1 1-0-2 1-3-1 1-3-2 2-0-2 2-0-3 2-1-3 "
            "3-1-0 3-1-3 3-2-0")


def test_task_sets_are_the_papers():
    table = [tuple(int(c) for c in task.split("-")) for task in TABLE_A2.split()]
    assert list(ap.PRETRAIN_TASKS) == table  # the same tasks in the paper's order
    assert ap.POSTTRAIN_TASKS == ((0, 1, 2, 3),) and ap.SINGLE_TASKS == ((0,), (1,), (2,), (3,))
    assert ap.AntEnvParams(task_set="1-2").tasks == ((1, 2),)
    assert ap.AntEnvParams(task_set="posttrain").max_task_len == 4
    hash(P)


@pytest.mark.parametrize("field,kwargs", [
    ("grid_size", dict(grid_size=0)),
    ("num_objects", dict(task_set="0-4")),
    ("task_set", dict(task_set="nope")),
    ("task_set", dict(task_set="0-0-1")),
    ("num_objects + num_walls + 1", dict(grid_size=2)),
    ("cell_size", dict(cell_size=0.0)),
    ("min_height", dict(min_height=1.2)),
])
def test_params_validation_names_the_field(field, kwargs):
    with pytest.raises(ValueError, match=field.replace("+", r"\+")):
        ap.AntEnvParams(**kwargs).validate()
