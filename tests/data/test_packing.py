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
