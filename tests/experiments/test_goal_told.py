import jax
import jax.numpy as jnp
import numpy as np

from experiments import goal_told
from hrl_internal.data import dataset, packing
from hrl_internal.envs import gridworld


def test_the_told_rollout_adds_the_goal_of_the_colour_the_env_says_is_next():
    env = gridworld.EnvParams()
    _, state = gridworld.reset(jax.random.PRNGKey(0), env)
    goal = jax.numpy.eye(env.num_objects) * 10.0
    task = np.asarray(state.task)[:int(state.task_len)]
    for progress in range(len(task) + 1):  # the last colour stays once the task is done
        e = goal_told.tell_next_colour(goal, jax.numpy.ones(env.num_objects),
                                       state.replace(progress=jax.numpy.int32(progress)))
        assert int(np.argmax(e)) == task[min(progress, len(task) - 1)]


def test_dropout_tells_whole_legs_about_as_often_as_asked():
    """A leg (one episode's steps heading to one colour) is told on all its slots or on none,
    the legs are drawn apart, and about ``told_prob`` of them are told."""
    env = gridworld.EnvParams()
    eps = dataset.to_numpy(dataset.generate(jax.random.split(jax.random.PRNGKey(4), 300), env))
    rows = jax.tree.map(jnp.asarray, packing.pack(eps, env))
    told = np.asarray(goal_told.told_legs(rows, jax.random.PRNGKey(5), 0.3))
    mask, colours, episode = (np.asarray(x) for x in (rows.mask, rows.colours, rows.episode))
    legs = []
    for r in range(told.shape[0]):
        for i in set(episode[r][mask[r]]):
            slots = np.flatnonzero(episode[r] == i)
            for c in set(colours[r][slots]):
                leg = slots[colours[r][slots] == c]
                # A colour recurs in a task only after others: split it into its runs.
                for run in np.split(leg, np.flatnonzero(np.diff(leg) > 1) + 1):
                    assert len(set(told[r][run])) == 1, (r, i, c)
                    legs.append(told[r][run[0]])
    assert len(legs) > 1000
    assert abs(np.mean(legs) - 0.3) < 0.04
    # Always and never are the told and control models.
    np.testing.assert_array_equal(goal_told.told_mask(rows, jax.random.PRNGKey(5), "told", 0.3),
                                  1.0)
    np.testing.assert_array_equal(
        goal_told.told_mask(rows, jax.random.PRNGKey(5), "control", 0.3), 0.0)
