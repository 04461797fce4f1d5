import jax
import numpy as np

from experiments import goal_told
from hrl_internal.data import dataset
from hrl_internal.envs import gridworld


def test_next_colour_is_the_cell_the_expert_reaches_next():
    env = gridworld.EnvParams()
    episodes = dataset.to_numpy(dataset.generate(jax.random.split(jax.random.PRNGKey(3), 16), env))
    told = goal_told.with_next_colour(episodes, env)
    colour = np.asarray(told.subgoals)
    cells, mask = np.asarray(episodes.agent_cells), np.asarray(episodes.mask, bool)
    objects = np.asarray(episodes.object_cells)
    reached = 0
    for i in range(episodes.num_episodes):
        for t in np.flatnonzero(mask[i]):
            on = np.flatnonzero(objects[i] == cells[i, t + 1])
            if on.size and cells[i, t + 1] != cells[i, t]:  # stepped onto a coloured cell
                assert on[0] == colour[i, t], (i, t)
                reached += 1
    assert reached >= 16 * 2  # every expert episode reaches its colours
    # The subgoal (colour pair) the dataset records is the next colour's pair.
    np.testing.assert_array_equal((colour // 2)[mask], np.asarray(episodes.subgoals)[mask])
