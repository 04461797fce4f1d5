import jax.numpy as jnp
import numpy as np

from experiments import objective_path


def test_interpolate_is_the_straight_line_between_two_trees():
    a = {"w": jnp.zeros(3), "b": {"c": jnp.ones(2)}}
    b = {"w": jnp.full(3, 4.0), "b": {"c": jnp.full(2, 3.0)}}
    mid = objective_path.interpolate(a, b, 0.25)
    np.testing.assert_allclose(mid["w"], 1.0)
    np.testing.assert_allclose(mid["b"]["c"], 1.5)
    np.testing.assert_array_equal(objective_path.interpolate(a, b, 1.0)["w"], b["w"])


def test_largest_rise_measures_the_climb_not_the_ends():
    assert objective_path.largest_rise([3.0, 2.0, 1.0]) == 0.0
    # Down to 1.0, up to 1.5, down again: the wall is 0.5 although both ends are lower.
    np.testing.assert_allclose(objective_path.largest_rise([2.0, 1.0, 1.5, 0.5]), 0.5)
    np.testing.assert_allclose(objective_path.largest_rise([1.0, 1.2, 0.0]), 0.2)
