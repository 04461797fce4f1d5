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


def test_subgoal_controllers_apply_each_steps_own_map_over_any_leading_axes():
    """Every step (and a scalar id under ``vmap``, as the internal env uses it) gets exactly its
    own ``U_g``; ids beyond the range index as ``a[g]`` would (negative from the end, clamped)."""
    ctrl = intervention.init_subgoal_controllers(jax.random.PRNGKey(1), 4, 6, 2)
    ctrl["b"] = jax.random.normal(jax.random.PRNGKey(3), ctrl["b"].shape)
    e = jax.random.normal(jax.random.PRNGKey(2), (2, 4, 6))
    subgoal = jnp.asarray([[0, 1, 2, 3], [3, -1, 7, 0]])
    out = intervention.subgoal_controller(ctrl, subgoal)(e)
    for i in range(2):
        for t in range(4):
            g = subgoal[i, t]
            a, b = ctrl["a"][g], ctrl["b"][g]  # the gather's own indexing rule
            np.testing.assert_allclose(out[i, t], e[i, t] + b @ (a @ e[i, t]), rtol=1e-5,
                                       atol=1e-5)
    one = jax.vmap(lambda g, x: intervention.subgoal_controller(ctrl, g)(x))(subgoal[0], e[0])
    np.testing.assert_allclose(one, out[0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(out[0, 0], out[0, 1] - e[0, 1] + e[0, 0], atol=1e-3), \
        "different subgoals, different maps"
