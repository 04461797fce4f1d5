import jax
import numpy as np

from hrl_internal.data import dataset, packing
from hrl_internal.envs import gridworld as gw

P = gw.EnvParams()


def test_first_fit_respects_capacity_and_keeps_every_episode():
    lengths = np.random.default_rng(0).integers(1, 100, size=300)
    rows = packing.first_fit(lengths, 100)
    assert sorted(i for row in rows for i in row) == list(range(300))
    assert all(lengths[row].sum() <= 100 for row in rows)
    assert len(rows) < 0.75 * 300


def test_packed_rows_hold_each_episode_intact():
    eps = dataset.to_numpy(dataset.generate(jax.random.split(jax.random.PRNGKey(0), 40), P))
    rows = packing.pack(eps, P)
    assert rows.mask.sum() == eps.mask.sum()
    obs, next_obs = jax.jit(packing.observations, static_argnums=1)(rows, P)
    ep_obs = np.asarray(dataset.observations(eps, P))
    for r in range(rows.num_rows):
        for i in set(rows.episode[r][rows.mask[r]]):
            slots = rows.episode[r] == i
            n = int(eps.mask[i].sum())
            assert slots.sum() == n and len(set(rows.segments[r][slots])) == 1
            np.testing.assert_array_equal(rows.actions[r][slots], eps.actions[i, :n])
            np.testing.assert_array_equal(obs[r][slots], ep_obs[i, :n])
            np.testing.assert_array_equal(next_obs[r][slots], ep_obs[i, 1:n + 1])
            np.testing.assert_array_equal(rows.subgoals[r][slots], eps.subgoals[i, :n])


def test_packed_rows_name_the_colour_the_expert_heads_to():
    """``colours`` is the task's colour at the step's progress: the colour the next visit ends a
    leg at. Checked against the episode's own run: a slot's colour is the one the agent stands on
    once the leg ends, and it is that of the episode's task at the recorded progress."""
    eps = dataset.to_numpy(dataset.generate(jax.random.split(jax.random.PRNGKey(1), 24), P))
    rows = packing.pack(eps, P)
    tasks = np.asarray(gw.task_array(P))
    for r in range(rows.num_rows):
        for i in set(rows.episode[r][rows.mask[r]]):
            slots = rows.episode[r] == i
            n = int(eps.mask[i].sum())
            np.testing.assert_array_equal(rows.colours[r][slots],
                                          tasks[eps.task_id[i], eps.task_index[i, :n]])
            # The last step of the episode enters the task's last colour.
            last = rows.colours[r][slots][-1]
            assert eps.object_cells[i][last] == eps.agent_cells[i, n]


def test_subgoal_steps_and_segments_restart_at_each_subgoal_and_episode():
    subgoals = np.array([[0, 0, 0, 2, 2, 1, 1, 1]])
    segments = np.array([[0, 0, 0, 0, 0, 0, 1, 1]])  # a new episode at slot 6, same subgoal
    rows = packing.PackedRows(*[None] * len(packing.PackedRows._fields))._replace(
        subgoals=subgoals, segments=segments)
    np.testing.assert_array_equal(packing.steps_into_subgoal(rows), [[0, 1, 2, 0, 1, 0, 0, 1]])
    scoped = [[1, 1, 1, 2, 2, 3, 4, 4]]
    np.testing.assert_array_equal(packing.subgoal_segments(rows), scoped)
    for forget, expected in (("none", (segments, segments)), ("lower", (scoped, segments)),
                             ("upper", (segments, scoped)), ("both", (scoped, scoped))):
        lower, upper = packing.forgetting_segments(rows, forget)
        np.testing.assert_array_equal(lower, expected[0], err_msg=forget)
        np.testing.assert_array_equal(upper, expected[1], err_msg=forget)


def test_rotated_rows_obey_the_moves_of_the_turned_world():
    eps = dataset.to_numpy(dataset.generate(jax.random.split(jax.random.PRNGKey(2), 40), P))
    rows = packing.pack(eps, P)
    turns = np.arange(rows.num_rows) % 4
    turned = jax.jit(packing.rotate, static_argnums=2)(rows, turns, P.grid_size)
    g, mask = P.grid_size, np.asarray(rows.mask, bool)
    agent, nxt = np.asarray(turned.agent_cells), np.asarray(turned.next_cells)
    moved = (agent != nxt) & mask
    assert moved.mean() > 0.5 and (turns[:, None] * mask > 0).any()
    # Every move goes one cell the way its (turned) action says.
    deltas = np.asarray(gw.ACTION_DELTAS)[np.asarray(turned.actions)]
    np.testing.assert_array_equal(nxt[moved] // g - agent[moved] // g, deltas[moved][:, 0])
    np.testing.assert_array_equal(nxt[moved] % g - agent[moved] % g, deltas[moved][:, 1])
    # A no-op stays a no-op; turn 0 is the identity; the layout stays on the grid and distinct.
    np.testing.assert_array_equal(moved, (np.asarray(rows.agent_cells) != rows.next_cells) & mask)
    np.testing.assert_array_equal(agent[turns == 0], rows.agent_cells[turns == 0])
    objects = np.asarray(turned.object_cells)
    assert objects.min() >= 0 and objects.max() < g * g
    assert all(len(set(o)) == len(o) for o in objects.reshape(-1, objects.shape[-1]))
    assert not np.array_equal(objects[turns == 1], rows.object_cells[turns == 1])
    # Four turns bring every cell back.
    back = turned
    for _ in range(3):
        back = packing.rotate(back, turns, g)
    np.testing.assert_array_equal(back.agent_cells, rows.agent_cells)
    np.testing.assert_array_equal(back.actions, rows.actions)
