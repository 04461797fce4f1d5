import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.data import ant_dataset, ant_expert, packing
from hrl_internal.data.dataset import DatasetError
from hrl_internal.envs import ant_pinpad

ENV = ant_pinpad.AntEnvParams(max_steps=24)
HYPER = ant_expert.ExpertHyper(num_envs=4, unroll=6, epochs=2, minibatches=2, hidden=16)


@pytest.fixture(scope="module")
def state():
    return ant_expert.init_state(jax.random.PRNGKey(0), ENV, HYPER)


@pytest.fixture(scope="module")
def trained(state):
    return ant_expert.train_steps(state, jax.random.PRNGKey(1), env=ENV, hyper=HYPER,
                                  num_updates=2)


@pytest.fixture(scope="module")
def episodes(state):
    keys = jax.random.split(jax.random.PRNGKey(2), 6)
    return ant_expert.rollout(state.params, keys, env=ENV, greedy=True)


def test_gae_matches_a_direct_sum():
    hyper = dataclasses.replace(HYPER, discount=0.9, gae_lambda=0.8)
    reward = jnp.array([[1.0], [0.0], [2.0], [0.5]])
    value = jnp.array([[0.5], [0.2], [-0.1], [0.3]])
    done = jnp.array([[False], [True], [False], [False]])
    last = jnp.array([0.7])
    zeros = jnp.zeros_like(reward)
    t = ant_expert.Transition(zeros, zeros, zeros, value, reward, done, done, zeros)
    adv, target = ant_expert.gae(t, last, hyper)
    # By hand: TD errors, cut at the episode end after step 1.
    v_next = np.array([0.2, 0.0, 0.3, 0.7])
    delta = np.array([1.0, 0.0, 2.0, 0.5]) + 0.9 * v_next - np.array([0.5, 0.2, -0.1, 0.3])
    want = np.zeros(4)
    want[3] = delta[3]
    want[2] = delta[2] + 0.72 * want[3]
    want[1] = delta[1]
    want[0] = delta[0] + 0.72 * want[1]
    np.testing.assert_allclose(adv[:, 0], want, rtol=1e-5)
    np.testing.assert_allclose(target[:, 0], want + np.array([0.5, 0.2, -0.1, 0.3]), rtol=1e-5)


def test_expert_observation_has_its_declared_size(state):
    env_state = ant_pinpad.reset(jax.random.PRNGKey(3), ENV)
    obs = ant_expert.expert_observation(env_state, ENV)
    assert obs.shape == (ant_expert.expert_obs_size(ENV),)
    assert bool(jnp.all(jnp.isfinite(obs)))


def test_ppo_gradient_reaches_every_parameter(state):
    keys = jax.random.PRNGKey(4)
    envs = jax.vmap(ant_pinpad.reset, in_axes=(0, None))(jax.random.split(keys, HYPER.num_envs),
                                                          ENV)
    hyper = dataclasses.replace(HYPER, entropy=0.01)
    _, transitions, last = ant_expert.collect(state.params, envs, keys, ENV, hyper)
    adv, target = ant_expert.gae(transitions, last, hyper)
    flat = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), (transitions, adv, target))
    grads = jax.grad(lambda p: ant_expert.ppo_loss(p, *flat, hyper)[0])(state.params)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert bool(jnp.all(jnp.isfinite(g))), path
        assert float(jnp.abs(g).max()) > 0, f"no gradient reaches {path}"


def test_training_updates_and_is_a_function_of_state_and_key(state, trained):
    new, metrics = trained
    assert int(new.step) == 2
    assert int(metrics["nonfinite_steps"]) == 0
    for k in ("loss", "value_loss", "reward_per_step"):
        assert np.isfinite(float(metrics[k])), k
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), new.params, state.params)
    assert max(jax.tree.leaves(moved)) > 0
    again, _ = ant_expert.train_steps(state, jax.random.PRNGKey(1), env=ENV, hyper=HYPER,
                                      num_updates=2)
    for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(new.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_rollout_records_whole_episodes(episodes):
    n, t = 6, ENV.max_steps
    assert episodes.obs.shape == (n, t + 1, ENV.obs_size)
    assert episodes.actions.shape == (n, t, ant_pinpad.ACTION_SIZE)
    mask = np.asarray(episodes.mask)
    assert mask[:, 0].all(), "every episode has its first step"
    lengths = mask.sum(1)
    assert all(mask[i, :lengths[i]].all() and not mask[i, lengths[i]:].any() for i in range(n))
    assert np.all(np.abs(np.asarray(episodes.actions)) <= 1.0)
    assert np.isfinite(np.asarray(episodes.obs)).all()
    tasks = np.asarray(ant_pinpad.PRETRAIN_TASKS)
    first = np.asarray(episodes.subgoals)[:, 0]
    np.testing.assert_array_equal(first, tasks[np.asarray(episodes.task_id), 0])


def test_dataset_round_trip_and_mismatch(tmp_path, episodes):
    path = str(tmp_path / "ant.npz")
    ant_dataset.save(path, episodes, ENV, seed=0)
    loaded, meta = ant_dataset.load(path, ENV)
    assert meta["seed"] == 0
    for a, b in zip(ant_dataset.to_numpy(episodes), loaded):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(DatasetError, match="generated for"):
        ant_dataset.load(path, dataclasses.replace(ENV, max_steps=30))
    with open(path, "r+b") as f:
        f.truncate(100)
    with pytest.raises(DatasetError, match="unreadable"):
        ant_dataset.load(path, ENV)


def test_dense_packing_keeps_every_step(episodes):
    host = ant_dataset.to_numpy(episodes)
    rows = packing.pack_dense(host, ENV.max_steps)
    mask = np.asarray(rows.mask)
    assert mask.sum() == host.mask.sum()
    for r in range(rows.num_rows):
        for segment in np.unique(rows.segments[r][mask[r]]):
            slots = rows.segments[r] == segment
            i = int(rows.episode[r][slots][0])
            n = int(host.mask[i].sum())
            np.testing.assert_array_equal(rows.obs[r][slots], host.obs[i, :n])
            np.testing.assert_array_equal(rows.next_obs[r][slots], host.obs[i, 1:n + 1])
            np.testing.assert_array_equal(rows.actions[r][slots], host.actions[i, :n])
