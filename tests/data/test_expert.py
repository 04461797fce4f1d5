import jax
import jax.numpy as jnp
import numpy as np

from hrl_internal.data import dataset, expert
from hrl_internal.envs import gridworld as gw

P = gw.EnvParams()


def test_noiseless_expert_solves_every_task_by_a_shortest_route():
    """Through the dataset's own generator: every recorded episode succeeds, and its length is the
    sum of the shortest leg distances of its recorded layout and task; every task occurs."""
    for task_set in ("pretrain", "posttrain"):
        params = gw.EnvParams(task_set=task_set)
        n = 48 * params.num_tasks
        episodes = dataset.generate(jax.random.split(jax.random.PRNGKey(0), n), params)

        @jax.jit
        def optimum(agent, objects, walls, task_id):
            states = jax.vmap(lambda a, o, w, t: gw.layout_state(a, o, w, t, params))(
                agent, objects, walls, task_id)
            return jax.vmap(lambda s: gw.leg_distances(s, params))(states).sum(axis=1)

        assert np.all(episodes.success), task_set
        assert set(np.asarray(episodes.task_id).tolist()) == set(range(params.num_tasks))
        lengths = np.asarray(episodes.mask).sum(axis=1)
        np.testing.assert_array_equal(lengths, optimum(
            episodes.agent_cells[:, 0], episodes.object_cells, episodes.wall_cells,
            episodes.task_id))


def test_expert_picks_uniformly_among_shortest_moves():
    # Agent at (2, 2), target colour 0 at (4, 4), a wall above: down and right are both shortest.
    objects = [4 * 7 + 4, 0, 6, 42, 48, 20, 13, 35]
    state = gw.EnvState(
        agent_cell=jnp.int32(2 * 7 + 2), object_cells=jnp.asarray(objects, jnp.int32),
        wall_cells=jnp.asarray([8, 9, 10, 11], jnp.int32),
        task=jnp.asarray([0, 1, 2, 3, 4, 5], jnp.int32), task_len=jnp.int32(6),
        task_id=jnp.int32(0), progress=jnp.int32(0), time=jnp.int32(0),
        done=jnp.bool_(False), success=jnp.bool_(False))
    values = expert.action_values(state, P)
    np.testing.assert_array_equal(values, [gw.unreachable(P), 3, 3, 5])  # up: a wall
    keys = jax.random.split(jax.random.PRNGKey(1), 4000)
    actions = np.asarray(jax.jit(jax.vmap(lambda k: expert.expert_action(k, state, P)))(keys))
    counts = np.bincount(actions, minlength=4)
    assert counts[0] == counts[3] == 0
    assert abs(counts[1] / 4000 - 0.5) < 0.04


def test_noisy_expert_never_ends_an_episode_on_a_wrong_colour():
    keys = jax.random.split(jax.random.PRNGKey(2), 512)
    episodes = dataset.generate(keys, P, epsilon=1.0)
    lengths = np.asarray(episodes.mask).sum(axis=1)
    ended_early = lengths < P.max_steps
    # A uniformly random safe walk ends early only by completing the task, never by a wrong visit.
    assert np.all(np.asarray(episodes.success)[ended_early])
    assert np.mean(episodes.success) < 0.2


def test_epsilon_controls_how_often_the_expert_deviates():
    keys = jax.random.split(jax.random.PRNGKey(3), 512)
    clean = dataset.generate(keys, P, epsilon=0.0)
    noisy = dataset.generate(keys, P, epsilon=0.2)
    clean_len = np.asarray(clean.mask).sum(axis=1).mean()
    noisy_len = np.asarray(noisy.mask).sum(axis=1).mean()
    assert noisy_len > clean_len * 1.1
    assert np.mean(noisy.success) > 0.9


def test_action_probs_is_the_distribution_the_expert_samples_from():
    """On recorded steps: the distribution sums to 1, holds the recorded action, and matches the
    expert's sampling frequencies at one state."""
    eps = dataset.to_numpy(dataset.generate(jax.random.split(jax.random.PRNGKey(2), 16), P))
    tasks = np.asarray(gw.task_array(P))
    n = int(eps.mask[0].sum())
    colours = tasks[eps.task_id[0], eps.task_index[0, :n]]
    probs = np.asarray(jax.jit(jax.vmap(lambda a, c: expert.action_probs(
        a, eps.object_cells[0], eps.wall_cells[0], c, P)))(eps.agent_cells[0, :n], colours))
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
    assert np.all(probs[np.arange(n), eps.actions[0, :n]] > 0)
    # A step with two shortest moves: the recorded expert samples them 50/50.
    objects = [4 * 7 + 4, 0, 6, 42, 48, 20, 13, 35]
    walls = [8, 9, 10, 11]
    p = np.asarray(expert.action_probs(2 * 7 + 2, jnp.asarray(objects), jnp.asarray(walls), 0, P))
    np.testing.assert_allclose(p, [0.0, 0.5, 0.5, 0.0])
