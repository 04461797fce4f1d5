import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import configs
from hrl_internal.data import ant_expert
from hrl_internal.training import expert_ppo
from hrl_internal.envs import ant_pinpad
from hrl_internal.utils import sharding

# The ant smoke preset's environment and expert: the launcher's test then finds this module's
# compiled training program in the shared compilation cache.
SMOKE = configs.preset("smoke", env="ant")
ENV = SMOKE.ant.env_params("pretrain")
HYPER = SMOKE.ant.expert_hyper()


@pytest.fixture(scope="module")
def state():
    # Placed as the launcher places its state: the same program, hence the same cache entry.
    return sharding.place(expert_ppo.init_state(jax.random.PRNGKey(0), ENV, HYPER))


@pytest.fixture(scope="module")
def trained(state):
    return expert_ppo.train_steps(state, jax.random.PRNGKey(1), env=ENV, hyper=HYPER,
                                  num_updates=1)


def test_gae_matches_a_direct_sum():
    hyper = dataclasses.replace(HYPER, discount=0.9, gae_lambda=0.8)
    reward = jnp.array([[1.0], [0.0], [2.0], [0.5]])
    value = jnp.array([[0.5], [0.2], [-0.1], [0.3]])
    done = jnp.array([[False], [True], [False], [False]])
    last = jnp.array([0.7])
    zeros = jnp.zeros_like(reward)
    t = expert_ppo.Transition(zeros, zeros, zeros, value, reward, done, done, zeros, zeros)
    adv, target = expert_ppo.gae(t, last, hyper)
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


def test_ppo_gradient_reaches_every_parameter(state):
    n, size = 64, ant_expert.expert_obs_size(ENV)
    keys = jax.random.split(jax.random.PRNGKey(4), 4)
    obs = jax.random.normal(keys[0], (n, size))
    action = jax.random.normal(keys[1], (n, ant_pinpad.ACTION_SIZE))
    mean, log_std = ant_expert.policy(state.params, obs)
    old = ant_expert.gaussian_log_prob(mean, log_std, action) - 0.05  # ratios off 1, unclipped
    zeros = jnp.zeros((n,))
    batch = expert_ppo.Transition(obs, action, old, zeros, zeros, zeros > 0, zeros > 0, zeros,
                                  zeros.astype(jnp.int32))
    advantage = jax.random.normal(keys[2], (n,))
    target = jax.random.normal(keys[3], (n,))
    hyper = dataclasses.replace(HYPER, entropy=0.01)
    grads = jax.grad(lambda p: expert_ppo.ppo_loss(p, batch, advantage, target, hyper)[0])(
        state.params)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert bool(jnp.all(jnp.isfinite(g))), path
        assert float(jnp.abs(g).max()) > 0, f"no gradient reaches {path}"


def test_training_updates_and_is_a_function_of_state_and_key(state, trained):
    new, metrics = trained
    assert int(new.step) == 1
    assert int(metrics["nonfinite_steps"]) == 0
    for k in ("loss", "value_loss", "reward_per_step"):
        assert np.isfinite(float(metrics[k])), k
    if float(metrics["episodes"]) > 0:
        ends = [float(v) for k, v in metrics.items() if k.startswith("ended_")]
        assert abs(sum(ends) - 1.0) < 1e-5, "every ended episode has one cause"
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), new.params, state.params)
    assert max(jax.tree.leaves(moved)) > 0
    again, _ = expert_ppo.train_steps(state, jax.random.PRNGKey(1), env=ENV, hyper=HYPER,
                                      num_updates=1)
    for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(new.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
