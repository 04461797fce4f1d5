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


def test_the_told_rollout_adds_the_goal_of_the_colour_the_env_says_is_next():
    env = gridworld.EnvParams()
    _, state = gridworld.reset(jax.random.PRNGKey(0), env)
    goal = jax.numpy.eye(env.num_objects) * 10.0
    task = np.asarray(state.task)[:int(state.task_len)]
    for progress in range(len(task) + 1):  # the last colour stays once the task is done
        e = goal_told.tell_next_colour(goal, jax.numpy.ones(env.num_objects),
                                       state.replace(progress=jax.numpy.int32(progress)))
        assert int(np.argmax(e)) == task[min(progress, len(task) - 1)]
