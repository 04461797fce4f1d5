import jax
import jax.numpy as jnp
import numpy as np

from hrl_internal.rl import ppo


def test_advantages_are_batch_normalised():
    adv = np.asarray(ppo.advantages(jnp.array([0.0, 0.0, 1.0, 0.0])))
    assert abs(adv.mean()) < 1e-6 and adv[2] > 1.5 and np.all(adv[[0, 1, 3]] < 0)
    # All-equal returns (no success yet) give no signal rather than a division by zero.
    np.testing.assert_array_equal(np.asarray(ppo.advantages(jnp.zeros(5))), 0.0)


def test_clipped_surrogate_stops_pushing_past_the_clip():
    old = jnp.zeros((1, 2))
    adv = jnp.array([[1.0, -1.0]])
    mask = jnp.ones((1, 2), bool)
    grad = lambda lp: np.asarray(jax.grad(lambda x: ppo.clipped_surrogate(
        x, old, adv, mask, 0.2)[0])(lp))
    inside = grad(jnp.zeros((1, 2)))
    assert inside[0, 0] < 0 < inside[0, 1]  # raise the good decision, lower the bad one
    beyond = grad(jnp.array([[0.5, -0.5]]))  # ratios e^±0.5 are past 1 ± 0.2 the way A points
    np.testing.assert_array_equal(beyond, 0.0)
    masked = np.asarray(jax.grad(lambda x: ppo.clipped_surrogate(
        x, old, adv, jnp.array([[True, False]]), 0.2)[0])(jnp.zeros((1, 2))))
    assert masked[0, 1] == 0.0 and masked[0, 0] < 0
