import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hrl_internal.training import guards
from hrl_internal.training.optim import clipped_adamw


def test_summarise_names_the_first_bad_update_and_averages_the_good_ones():
    loss = jnp.array([1.0, 3.0, jnp.nan, 5.0])
    grad_norm = jnp.array([1.0, jnp.inf, 1.0, 1.0])
    per_step = {"loss": loss, "nonfinite": jax.vmap(guards.step_flags)(loss, grad_norm)}
    out = guards.summarise(per_step, jnp.int32(40))
    assert float(out["nonfinite_steps"]) == 2 and float(out["first_nonfinite_step"]) == 41
    assert float(out["loss"]) == pytest.approx(3.0)  # mean of the finite updates 1 and 5
    clean = guards.summarise({"loss": jnp.ones(3), "nonfinite": jnp.zeros(3)}, jnp.int32(0))
    assert float(clean["first_nonfinite_step"]) == -1 and float(clean["nonfinite_steps"]) == 0


def test_check_stops_naming_phase_and_update_or_counts_skips():
    metrics = {"nonfinite_steps": np.float32(2), "first_nonfinite_step": np.float32(41)}
    with pytest.raises(guards.NonFiniteError, match=r"\[pretrain\] .* at update 42"):
        guards.check(metrics, "pretrain", "stop")
    assert guards.check(metrics, "pretrain", "skip") == 2
    assert guards.check({"nonfinite_steps": 0, "first_nonfinite_step": -1}, "x", "stop") == 0


def test_skipping_optimiser_leaves_params_and_moments_unchanged_on_a_nan_gradient():
    opt = clipped_adamw(1e-2, 0.03, 1.0, skip_nonfinite=True)
    params = {"w": jnp.arange(3.0)}
    state = opt.init(params)
    updates, state = opt.update({"w": jnp.ones(3)}, state, params)
    params = optax.apply_updates(params, updates)
    before = jax.tree.leaves((params, state.inner_state))
    updates, state = opt.update({"w": jnp.array([1.0, jnp.nan, 1.0])}, state, params)
    after_params = optax.apply_updates(params, updates)
    np.testing.assert_array_equal(after_params["w"], params["w"])
    for a, b in zip(before, jax.tree.leaves((after_params, state.inner_state))):
        np.testing.assert_array_equal(a, b)
    plain = clipped_adamw(1e-2, 0.03, 1.0)
    updates, _ = plain.update({"w": jnp.array([1.0, jnp.nan, 1.0])}, plain.init(params), params)
    assert not np.all(np.isfinite(optax.apply_updates(params, updates)["w"])), "what skip prevents"


def test_all_finite_looks_at_float_leaves_only():
    assert guards.all_finite({"a": jnp.ones(2), "step": jnp.int32(3)})
    assert not guards.all_finite({"a": jnp.array([1.0, jnp.inf])})
