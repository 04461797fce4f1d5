import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.rl import policy


@pytest.mark.parametrize("block", policy.BLOCKS)
def test_untrained_policy_is_the_prior_and_log_prob_is_gaussian(block):
    config = policy.PolicyConfig(d_model=6, latent_dim=3, width=8, block=block)
    params = policy.init(jax.random.PRNGKey(0), config)
    h, mean, log_std = policy.step(params, policy.initial_state(config), jnp.ones(6), config)
    np.testing.assert_array_equal(np.asarray(mean), 0.0)
    np.testing.assert_array_equal(np.asarray(log_std), 0.0)
    assert h.shape == (8,)
    z = jnp.array([0.5, -1.0, 2.0])
    expected = -0.5 * float(jnp.sum(z**2)) - 1.5 * math.log(2 * math.pi)
    assert abs(float(policy.log_prob(mean, log_std, z)) - expected) < 1e-5
    samples = jax.vmap(lambda k: policy.sample(k, mean, log_std))(
        jax.random.split(jax.random.PRNGKey(1), 4000))
    assert abs(float(samples.std()) - 1.0) < 0.05


def test_residual_layer_reads_the_stream_and_its_memory_and_every_parameter_learns():
    config = policy.PolicyConfig(d_model=6, latent_dim=3, width=8, block="residual")
    params = policy.init(jax.random.PRNGKey(0), config)
    params["mean"]["w"] = jax.random.normal(jax.random.PRNGKey(1), params["mean"]["w"].shape)
    e1, e2 = jax.random.normal(jax.random.PRNGKey(2), (2, 6))
    h0 = policy.initial_state(config)
    h1, mean1, _ = policy.step(params, h0, e1, config)
    _, mean2, _ = policy.step(params, h0, e2, config)
    _, mean_after, _ = policy.step(params, h1, e1, config)
    assert not np.allclose(mean1, mean2)  # the current stream
    assert not np.allclose(mean1, mean_after)  # and what it saw before

    def loss(p):
        h, m, _ = policy.step(p, h0, e1, config)
        return jnp.sum(policy.step(p, h, e2, config)[1] ** 2) + jnp.sum(m)
    grads = jax.grad(loss)(params)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        if "log_std" not in jax.tree_util.keystr(path):  # fixed unless learn_std
            assert np.all(np.isfinite(g)) and float(jnp.abs(g).sum()) > 0, path
    with pytest.raises(ValueError, match="block must be one of"):
        policy.PolicyConfig(d_model=6, latent_dim=3, block="transformer")


def test_categorical_head_starts_uniform_draws_one_hot_codes_and_scores_them():
    config = policy.PolicyConfig(d_model=6, latent_dim=4, width=8, head="categorical")
    params = policy.init(jax.random.PRNGKey(0), config)
    _, logits, log_std = policy.step(params, policy.initial_state(config), jnp.ones(6), config)
    z = jnp.eye(4)[2]
    assert abs(float(policy.log_prob(logits, log_std, z, "categorical")) - math.log(0.25)) < 1e-6
    # Away from uniform: frequencies follow the softmax, each draw is one code.
    logits = jnp.array([2.0, 0.0, -1.0, 0.5])
    draws = jax.vmap(lambda k: policy.sample(k, logits, log_std, "categorical"))(
        jax.random.split(jax.random.PRNGKey(1), 8000))
    np.testing.assert_array_equal(np.asarray(draws.sum(-1)), 1.0)
    np.testing.assert_allclose(np.asarray(draws.mean(0)), np.asarray(jax.nn.softmax(logits)),
                               atol=0.02)
    lp = jax.vmap(lambda d: policy.log_prob(logits, log_std, d, "categorical"))(draws)
    np.testing.assert_allclose(np.asarray(lp), np.asarray(draws @ jax.nn.log_softmax(logits)),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="head must be one of"):
        policy.PolicyConfig(d_model=6, latent_dim=3, head="beta")
