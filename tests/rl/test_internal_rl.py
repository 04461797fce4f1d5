import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.envs import gridworld
from hrl_internal.rl import internal_rl, policy, train


def _spec(s, **kw):
    return internal_rl.InternalRLSpec(
        s["spec"], policy.PolicyConfig(s["model"].d_model, s["meta"].latent_dim, width=8),
        num_slots=4, start_ticks=12, max_episodes=4, **kw)


@pytest.fixture(scope="module")
def rolled(frozen_setup):
    spec = _spec(frozen_setup)
    params = internal_rl.init_params(jax.random.PRNGKey(0), spec)
    # A policy that is not the prior, so the ratio test below means something.
    params["mean"]["w"] = 0.3 * jax.random.normal(jax.random.PRNGKey(1), params["mean"]["w"].shape)
    batch, stats = jax.jit(internal_rl.rollout, static_argnums=3)(
        params, frozen_setup["frozen"], jax.random.PRNGKey(2), spec)
    return spec, params, batch, stats


def test_rollout_decides_at_switches_and_counts_whole_episodes(rolled):
    spec, _, batch, stats = rolled
    decide, first = np.asarray(batch.decide), np.asarray(batch.first)
    assert np.all(decide[first])  # every episode starts with a decision
    assert int(stats.episodes) >= spec.num_slots and int(stats.decisions) == decide.sum()
    assert int(stats.decisions) <= int(stats.env_steps)
    assert batch.e.shape == (spec.num_ticks, spec.num_slots, spec.env.model.d_model)


def test_rl_loss_rescores_the_acting_log_probs_and_has_policy_gradients(rolled):
    spec, params, batch, _ = rolled
    new = np.asarray(internal_rl.log_probs(params, batch, spec))
    mask = np.asarray(batch.decide)
    np.testing.assert_allclose(new[mask], np.asarray(batch.log_prob)[mask], rtol=1e-4, atol=1e-4)
    batch = batch._replace(advantage=jax.random.normal(jax.random.PRNGKey(3),
                                                       batch.advantage.shape))
    grads = jax.grad(lambda p: internal_rl.rl_loss(p, batch, spec)[0])(params)
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
    assert all(np.isfinite(norms)) and sum(norms) > 0
    assert float(jnp.linalg.norm(grads["mean"]["w"])) > 0


def test_update_moves_the_policy_only(frozen_setup, rolled):
    spec, params, _, _ = rolled
    hyper = train.RLHyper(learning_rate=1e-2)
    frozen = frozen_setup["frozen"]
    before = jax.tree.map(np.array, frozen)
    state, metrics = jax.jit(train.update, static_argnames=("learner", "spec", "hyper"))(
        train.init_state(params, hyper), frozen, jax.random.PRNGKey(4), learner="codes",
        spec=spec, hyper=hyper)
    assert int(state.step) == 1 and np.isfinite(float(metrics["loss"]))
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(frozen)):
        np.testing.assert_array_equal(a, np.asarray(b))
    assert 0.0 <= float(metrics["success"]) <= 1.0 and float(metrics["episodes"]) > 0

