import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.envs import gridworld as gw

P = gw.EnvParams()
UP, RIGHT, DOWN, LEFT = range(4)

step = jax.jit(gw.step, static_argnums=2)


def cell(row, col, g=7):
    return row * g + col


def make_state(agent, objects, walls, task, params=P):
    task = list(task) + [gw.NO_TASK] * (params.max_task_len - len(task))
    return gw.EnvState(
        agent_cell=jnp.int32(agent), object_cells=jnp.asarray(objects, jnp.int32),
        wall_cells=jnp.asarray(walls, jnp.int32), task=jnp.asarray(task, jnp.int32),
        task_len=jnp.int32(sum(t != gw.NO_TASK for t in task)), task_id=jnp.int32(0),
        progress=jnp.int32(0), time=jnp.int32(0), done=jnp.bool_(False),
        success=jnp.bool_(False))


# Colours 0..7 along the bottom row and the row above it; walls in the top-right corner.
OBJECTS = [cell(6, c) for c in range(7)] + [cell(5, 0)]
WALLS = [cell(0, 6), cell(1, 6), cell(2, 6), cell(0, 5)]


def test_reset_samples_disjoint_cells_and_valid_task():
    keys = jax.random.split(jax.random.PRNGKey(0), 2000)
    obs, states = jax.jit(jax.vmap(lambda k: gw.reset(k, P)))(keys)
    cells = np.concatenate([np.asarray(states.object_cells), np.asarray(states.wall_cells),
                            np.asarray(states.agent_cell)[:, None]], axis=1)
    assert all(len(set(row)) == P.num_objects + P.num_walls + 1 for row in cells)
    assert obs.shape == (2000, 637) == (2000, P.obs_size)
    np.testing.assert_array_equal(obs.sum(axis=1), P.num_objects + P.num_walls + 1)
    counts = np.bincount(np.asarray(states.task_id), minlength=16)
    assert counts.min() > 60, "all 16 pretraining tasks are sampled"
    tasks = gw.task_array(P)[states.task_id]
    np.testing.assert_array_equal(states.task, tasks)
    assert not np.any(states.done) and np.all(states.time == 0)


def test_observation_is_per_cell_one_hot_without_task():
    state = make_state(cell(3, 3), OBJECTS, WALLS, (0, 1))
    obs = np.asarray(gw.observe(state, P)).reshape(49, 13)
    for w, c in enumerate(WALLS):
        assert obs[c, w] == 1 and obs[c].sum() == 1
    for o, c in enumerate(OBJECTS):
        assert obs[c, 4 + o] == 1 and obs[c].sum() == 1
    assert obs[cell(3, 3), 12] == 1 and obs.sum() == 13
    other_task = state.replace(task=state.task.at[0].set(2))
    np.testing.assert_array_equal(gw.observe(other_task, P), gw.observe(state, P))


def test_walls_and_border_are_no_ops():
    state = make_state(cell(1, 5), OBJECTS, WALLS, (0, 1))
    _, s, r, d, _ = step(state, jnp.int32(RIGHT), P)  # (1, 6) is a wall
    assert int(s.agent_cell) == cell(1, 5) and int(s.time) == 1 and not d and r == 0
    _, s, _, _, _ = step(state, jnp.int32(UP), P)  # (0, 5) is a wall
    assert int(s.agent_cell) == cell(1, 5)
    corner = make_state(cell(0, 0), OBJECTS, WALLS, (0, 1))
    for action in (UP, LEFT):
        _, s, _, d, _ = step(corner, jnp.int32(action), P)
        assert int(s.agent_cell) == cell(0, 0) and not d
    _, s, _, _, _ = step(corner, jnp.int32(DOWN), P)
    assert int(s.agent_cell) == cell(1, 0)


def test_visiting_the_wrong_colour_ends_the_episode_without_reward():
    state = make_state(cell(5, 2), OBJECTS, WALLS, (0, 1, 2, 3))
    _, s, r, d, info = step(state, jnp.int32(DOWN), P)  # enters colour 2, the next is 0
    assert d and r == 0 and not s.success and int(s.progress) == 0


def test_reward_only_on_ordered_completion_with_subgoal_labels():
    # Walk along row 5 and dip into colours 0, 1, 2, 3 below (row 6).
    state = make_state(cell(5, 1), OBJECTS, WALLS, (1, 2))
    # Enter colour 1 from above: correct but not the end.
    _, s, r, d, info = step(state, jnp.int32(DOWN), P)
    assert r == 0 and not d and int(s.progress) == 1 and int(info["task_index"]) == 1
    assert not info["subgoal_completed"] and int(info["subgoal"]) == 1  # colour 2 -> subgoal 1
    _, s, _, _, _ = step(s, jnp.int32(UP), P)
    _, s, _, _, _ = step(s, jnp.int32(RIGHT), P)
    _, s, r, d, info = step(s, jnp.int32(DOWN), P)  # colour 2: task done
    assert r == 1 and d and s.success and int(s.progress) == 2

    pair = make_state(cell(5, 1), OBJECTS, WALLS, (0, 1, 2, 3))
    _, s, _, _, _ = step(pair, jnp.int32(LEFT), P)  # (5, 0) is colour 7: wrong
    assert s.done and not s.success
    s = pair.replace(agent_cell=jnp.int32(cell(6, 0)), progress=jnp.int32(1))  # on colour 0
    _, s, r, d, info = step(s, jnp.int32(RIGHT), P)  # colour 1 completes pair 0-1
    assert info["subgoal_completed"] and int(info["subgoal"]) == 1 and r == 0 and not d


def test_standing_still_on_a_colour_does_not_revisit_it():
    # On colour 0 (visited), bump into the bottom border: not a new visit of 0.
    state = make_state(cell(6, 0), OBJECTS, WALLS, (0, 1)).replace(progress=jnp.int32(1))
    _, s, r, d, _ = step(state, jnp.int32(DOWN), P)
    assert not d and int(s.progress) == 1 and int(s.agent_cell) == cell(6, 0)


def test_time_limit_and_done_is_absorbing():
    params = gw.EnvParams(max_steps=5)
    state = make_state(cell(0, 0), OBJECTS, WALLS, (0, 1), params)
    for t in range(5):
        _, state, r, d, _ = gw.step(state, jnp.int32(UP), params)
        assert bool(d) == (t == 4) and r == 0
    frozen = state
    _, state, r, d, _ = gw.step(state, jnp.int32(DOWN), params)
    assert d and r == 0 and int(state.time) == 5
    assert int(state.agent_cell) == int(frozen.agent_cell)


def test_jit_vmap_scan_equals_python_loop():
    n, steps = 6, 40
    keys = jax.random.split(jax.random.PRNGKey(3), n)
    actions = jax.random.randint(jax.random.PRNGKey(4), (steps, n), 0, 4)

    @jax.jit
    def batched(keys, actions):
        obs, states = jax.vmap(lambda k: gw.reset(k, P))(keys)

        def body(s, a):
            o, s, r, d, info = jax.vmap(gw.step, in_axes=(0, 0, None))(s, a, P)
            return s, (o, r, d, info["task_index"])
        return jax.lax.scan(body, states, actions)

    _, (obs_b, rew_b, done_b, idx_b) = batched(keys, actions)
    reset = jax.jit(gw.reset, static_argnums=1)
    for i in range(n):
        _, s = reset(keys[i], P)
        for t in range(steps):
            o, s, r, d, info = step(s, actions[t, i], P)
            np.testing.assert_array_equal(o, obs_b[t, i])
            assert float(r) == float(rew_b[t, i]) and bool(d) == bool(done_b[t, i])
            assert int(info["task_index"]) == int(idx_b[t, i])


def python_bfs(g, start, target, blocked):
    """Reference shortest path: moves may enter any unblocked cell, or the target."""
    dist = {start: 0}
    queue = collections.deque([start])
    while queue:
        c = queue.popleft()
        if c == target:
            return dist[c]
        r, k = divmod(c, g)
        for dr, dk in gw.ACTION_DELTAS:
            nr, nk = r + dr, k + dk
            n = nr * g + nk
            if 0 <= nr < g and 0 <= nk < g and n not in dist and (n == target or n not in blocked):
                dist[n] = dist[c] + 1
                queue.append(n)
    return None


def test_distances_match_a_reference_bfs():
    params = gw.EnvParams(solvable_only=False)
    keys = jax.random.split(jax.random.PRNGKey(5), 300)
    _, states = jax.vmap(lambda k: gw.reset(k, params))(keys)
    legs = np.asarray(jax.jit(jax.vmap(lambda s: gw.leg_distances(s, params)))(states))
    unreachable = gw.unreachable(params)
    seen_unreachable = 0
    for i in range(300):
        objects = [int(c) for c in states.object_cells[i]]
        walls = {int(c) for c in states.wall_cells[i]}
        task = [int(c) for c in states.task[i] if c != gw.NO_TASK]
        start = int(states.agent_cell[i])
        for k, colour in enumerate(task):
            target = objects[colour]
            blocked = walls | {c for j, c in enumerate(objects) if j != colour}
            expected = python_bfs(7, start, target, blocked)
            got = int(legs[i, k])
            assert got == (unreachable if expected is None else expected), (i, k)
            seen_unreachable += expected is None
            start = target
    assert seen_unreachable > 0, "the sample should contain walled-in targets"


def test_solvable_only_filters_layouts():
    keys = jax.random.split(jax.random.PRNGKey(6), 1000)
    for solvable_only, check in ((True, np.all), (False, lambda ok: np.mean(ok) < 0.95)):
        for task_set in ("pretrain", "posttrain"):
            params = gw.EnvParams(task_set=task_set, solvable_only=solvable_only)
            fn = jax.jit(jax.vmap(lambda k: gw.leg_distances(gw.reset(k, params)[1], params)))
            ok = np.asarray(fn(keys)).sum(axis=1) <= params.max_steps
            assert check(ok), (task_set, solvable_only, ok.mean())


# Table A1 of the paper, as printed there (not derived from the code's own list).
TABLE_A1 = ("0-1-4-5-0-1 0-1-4-5-2-3 0-1-6-7-2-3 2-3-0-1-4-5 2-3-6-7-2-3 2-3-6-7-4-5 4-5-0-1-4-5 "
            "4-5-0-1-6-7 4-5-2-3-6-7 6-7-2-3-0-1 6-7-2-3-6-7 6-7-4-5-0-1 0-1-6-7-4-5 2-3-0-1-6-7 "
            "4-5-2-3-0-1 6-7-4-5-2-3")


def test_task_sets_are_the_papers():
    table = [tuple(int(c) for c in task.split("-")) for task in TABLE_A1.split()]
    assert sorted(gw.PRETRAIN_TASKS) == sorted(table) and len(set(table)) == 16
    for task in gw.PRETRAIN_TASKS:  # every task is three colour pairs
        assert all(task[i + 1] == task[i] + 1 and task[i] % 2 == 0 for i in range(0, 6, 2))
    assert gw.POSTTRAIN_TASKS == ((0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3),)
    pretrain_transitions = {(t[i] // 2, t[i + 2] // 2) for t in gw.PRETRAIN_TASKS for i in (0, 2)}
    post = gw.POSTTRAIN_TASKS[0]
    post_transitions = {(post[i] // 2, post[i + 2] // 2) for i in range(0, 10, 2)}
    assert not post_transitions & pretrain_transitions


@pytest.mark.parametrize("field,kwargs", [
    ("grid_size", dict(grid_size=0)),
    ("num_objects", dict(num_objects=5)),
    ("task_set", dict(task_set="nope")),
    ("num_objects + num_walls + 1", dict(grid_size=3)),
    ("grid_size", dict(grid_size=40)),
])
def test_params_validation_names_the_field(field, kwargs):
    with pytest.raises(ValueError, match=field.replace("+", r"\+")):
        gw.EnvParams(**kwargs).validate()
