import jax
import jax.numpy as jnp
import numpy as np

from hrl_internal.models import intervention


def test_low_rank_update_is_the_full_map_not_its_transpose_or_diagonal():
    ka, kb, ke = jax.random.split(jax.random.PRNGKey(0), 3)
    a = jax.random.normal(ka, (3, 6))
    b = jax.random.normal(kb, (6, 3))
    e = jax.random.normal(ke, (5, 6))
    u = b @ a
    got = intervention.low_rank_update(e, a, b)
    np.testing.assert_allclose(got, e + e @ u.T, rtol=1e-5, atol=1e-5)
    assert not np.allclose(got, e + e @ u, atol=1e-3)
    assert not np.allclose(got, e + e * jnp.diag(u), atol=1e-3)


def test_subgoal_controllers_pick_per_step_maps_and_start_as_identity():
    ctrl = intervention.init_subgoal_controllers(jax.random.PRNGKey(1), 4, 6, 2)
    e = jax.random.normal(jax.random.PRNGKey(2), (2, 3, 6))
    subgoal = jnp.asarray([[0, 1, 2], [3, 3, 0]])
    np.testing.assert_array_equal(intervention.subgoal_controller(ctrl, subgoal)(e), e)
    ctrl["b"] = jax.random.normal(jax.random.PRNGKey(3), ctrl["b"].shape)
    out = intervention.subgoal_controller(ctrl, subgoal)(e)
    g = 2
    expected = e[0, 2] + ctrl["b"][g] @ (ctrl["a"][g] @ e[0, 2])
    np.testing.assert_allclose(out[0, 2], expected, rtol=1e-5, atol=1e-5)


def test_affine_subgoal_controllers_start_as_identity_and_add_their_subgoals_offset():
    ctrl = intervention.init_subgoal_controllers(jax.random.PRNGKey(1), 4, 6, 2, affine=True)
    assert ctrl["c"].shape == (4, 6)
    e = jax.random.normal(jax.random.PRNGKey(2), (2, 3, 6))
    subgoal = jnp.asarray([[0, 1, 2], [3, 3, 0]])
    np.testing.assert_array_equal(intervention.subgoal_controller(ctrl, subgoal)(e), e)
    ctrl["b"] = jax.random.normal(jax.random.PRNGKey(3), ctrl["b"].shape)
    ctrl["c"] = jax.random.normal(jax.random.PRNGKey(4), ctrl["c"].shape)
    out = intervention.subgoal_controller(ctrl, subgoal)(e)
    linear = intervention.subgoal_controller({"a": ctrl["a"], "b": ctrl["b"]}, subgoal)(e)
    np.testing.assert_allclose(out - linear, ctrl["c"][subgoal], rtol=1e-5, atol=1e-5)
