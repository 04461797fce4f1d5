import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.data import packing
from hrl_internal.training import pretrain
from hrl_internal.training.checkpoint import Checkpointer
from hrl_internal.utils import sharding


def test_training_drives_heldout_loss_well_below_its_start(tiny):
    final = pretrain.evaluate(tiny["params"], tiny["test_rows"], model=tiny["model"],
                              env=tiny["env"])
    assert tiny["initial_heldout_nll"] > 1.35  # ~ln 4 at initialisation
    assert float(final["action_nll"]) < tiny["initial_heldout_nll"] - 0.2
    assert float(final["action_accuracy"]) > 0.4  # chance is 0.25


def test_gradients_are_finite_and_nonzero(tiny):
    batch = packing.sample_batch(tiny["rows"], jax.random.PRNGKey(0), 4)
    grads = jax.jit(jax.grad(lambda p: pretrain.loss_fn(p, batch, tiny["model"], tiny["env"],
                                                        0.01)[0]))(tiny["params"])
    leaves = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(g)) for g in leaves)
    assert sum(float(jnp.abs(g).sum()) for g in leaves) > 0
    assert float(jnp.abs(grads["obs_head"]["w"]).sum()) > 0, "λ > 0 trains the observation head"


def test_resume_from_checkpoint_equals_an_uninterrupted_run(tiny, tmp_path):
    model, env, hyper, rows = tiny["model"], tiny["env"], tiny["hyper"], tiny["rows"]
    key = jax.random.PRNGKey(7)
    kwargs = dict(model=model, env=env, hyper=hyper)
    # Placed as the launcher places it: the restored state then reuses the same compiled program.
    start = sharding.place(pretrain.init_state(jax.random.PRNGKey(5), model, hyper))
    straight, _ = pretrain.train_steps(start, rows, key, num_steps=4, **kwargs)
    straight, _ = pretrain.train_steps(straight, rows, key, num_steps=4, **kwargs)

    half, _ = pretrain.train_steps(start, rows, key, num_steps=4, **kwargs)
    ckpt = Checkpointer(str(tmp_path / "ckpt"))
    ckpt.save(4, half)
    template = pretrain.init_state(jax.random.PRNGKey(99), model, hyper)
    restored = Checkpointer(str(tmp_path / "ckpt")).restore(template)
    assert int(restored.step) == 4
    resumed, _ = pretrain.train_steps(restored, rows, key, num_steps=4, **kwargs)
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(a, b)


def test_checkpointer_keeps_the_latest_and_reports_none_when_empty(tmp_path):
    ckpt = Checkpointer(str(tmp_path / "c"), max_to_keep=2)
    template = {"w": jnp.zeros(3), "step": jnp.zeros((), jnp.int32)}
    state, resumed = ckpt.restore_or(template)
    assert not resumed and ckpt.latest_step() is None
    for step in (1, 2, 3):
        ckpt.save(step, {"w": jnp.full(3, float(step)), "step": jnp.int32(step)})
    assert ckpt.latest_step() == 3
    state, resumed = ckpt.restore_or(template)
    assert resumed and float(state["w"][0]) == 3.0
    assert float(ckpt.restore(template, step=2)["w"][0]) == 2.0


def test_cosine_schedule_warms_up_then_decays_to_zero():
    lr = pretrain.learning_rate_schedule(1e-3, "cosine", warmup_steps=10, total_steps=100)
    assert float(lr(0)) == 0.0
    np.testing.assert_allclose(float(lr(10)), 1e-3, rtol=1e-6)
    assert float(lr(40)) < float(lr(20)) < 1e-3
    assert float(lr(100)) < 1e-9
    assert pretrain.learning_rate_schedule(1e-3, "constant", 10, 100) == 1e-3


def test_cosine_schedule_moves_the_parameters_by_the_scheduled_amount(tiny):
    # At step 0 of the warm-up the learning rate is 0: the first update changes nothing, the
    # second (lr > 0) changes the parameters; a constant schedule changes them at once.
    import dataclasses
    model, env, rows = tiny["model"], tiny["env"], tiny["rows"]
    hyper = dataclasses.replace(tiny["hyper"], schedule="cosine", warmup_steps=4, total_steps=8,
                                weight_decay=0.0)
    start = pretrain.init_state(jax.random.PRNGKey(5), model, hyper)
    one, _ = pretrain.train_steps(start, rows, jax.random.PRNGKey(1), model=model, env=env,
                                  hyper=hyper, num_steps=1)
    two, _ = pretrain.train_steps(one, rows, jax.random.PRNGKey(1), model=model, env=env,
                                  hyper=hyper, num_steps=1)
    moved = lambda a, b: max(float(jnp.max(jnp.abs(x - y))) for x, y in
                             zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)))
    assert moved(start, one) == 0.0
    assert moved(one, two) > 0.0


def test_anneal_schedule_holds_then_decays_linearly_to_zero():
    lr = pretrain.learning_rate_schedule(1e-3, "anneal", 0, total_steps=100, anneal_fraction=0.2)
    assert float(lr(0)) == float(lr(80)) == pytest.approx(1e-3)
    np.testing.assert_allclose(float(lr(90)), 5e-4, rtol=1e-6)
    assert float(lr(99)) == pytest.approx(5e-5)
    assert float(lr(100)) == 0.0


def test_expert_target_is_the_expected_loss_of_a_recorded_action(tiny):
    """``action_target=expert`` scores the predictions against the expert's action distribution:
    the loss a recorded action would give, averaged over the actions the expert could have
    recorded (so both targets have one minimiser). Monte Carlo over relabelled batches."""
    model, env, params = tiny["model"], tiny["env"], tiny["params"]
    batch = packing.sample_batch(tiny["rows"], jax.random.PRNGKey(3), 4)
    probs = pretrain.expert_probs(batch, env)
    loss = jax.jit(lambda b, t: pretrain.loss_fn(params, b, model, env, 0.0, t)[0],
                   static_argnums=1)
    draws = [loss(batch._replace(actions=jax.random.categorical(
        jax.random.PRNGKey(k), jnp.log(probs))), "sample") for k in range(400)]
    expected = float(loss(batch, "expert"))
    assert abs(float(np.mean(draws)) - expected) < 0.01 * expected
    # ... and it is not the recorded actions' loss (which carries one draw's tie-break).
    assert float(loss(batch, "sample")) != pytest.approx(expected, rel=1e-3)
