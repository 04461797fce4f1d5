import math

import jax
import jax.numpy as jnp
import numpy as np

from hrl_internal.rl import policy


def test_untrained_policy_is_the_prior_and_log_prob_is_gaussian():
    config = policy.PolicyConfig(d_model=6, latent_dim=3, width=8)
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
