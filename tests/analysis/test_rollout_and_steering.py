import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.analysis import rollout, steering
from hrl_internal.envs import gridworld
from hrl_internal.models import intervention


def identity(params, e, state):
    return e


def test_rollout_is_reproducible_and_an_identity_intervention_changes_nothing(tiny):
    args = (jax.random.PRNGKey(0), tiny["params"], tiny["model"], tiny["env"], 64)
    plain = rollout.rollout(*args)
    again = rollout.rollout(*args)
    same = rollout.rollout(*args, layer=1, intervene=identity)
    for a, b, c in zip(plain, again, same):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert np.all((plain.length >= 1) & (plain.length <= tiny["env"].max_steps))
    # Only a finished task counts as success (every success visited all 6 colours), and an
    # episode that ends early without success visited fewer.
    assert np.all(plain.progress[plain.success] == 6)
    early = (~plain.success) & (plain.length < tiny["env"].max_steps)
    assert early.any() and np.all(plain.progress[early] < 6)


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="open: acting alone, the suite's 300-step tiny base does not yet commit "
                   "to one subgoal more often than an untrained one (README, findings)")
def test_trained_model_reaches_a_first_colour_more_often_than_an_untrained_one(tiny):
    from hrl_internal.models import transformer
    args = (jax.random.PRNGKey(1), tiny["model"], tiny["env"], 512)
    untrained = transformer.init(jax.random.PRNGKey(9), tiny["model"])
    trained = rollout.rollout(args[0], tiny["params"], *args[1:])
    baseline = rollout.rollout(args[0], untrained, *args[1:])
    # Every pretraining task starts with an even colour: an imitator heads for one of 4 colours,
    # a near-random walk for any of 8 (or none within T).
    assert np.mean(trained.progress >= 1) > np.mean(baseline.progress >= 1) + 0.05


def test_steering_controllers_lower_the_steered_loss(tiny):
    layer = 1
    controllers, losses = steering.train(
        jax.random.PRNGKey(2), tiny["params"], tiny["rows"], model=tiny["model"], env=tiny["env"],
        layer=layer, rank=4, steps=100, batch_size=8, learning_rate=3e-3)
    losses = np.asarray(losses)
    assert np.all(np.isfinite(losses))
    assert float(jnp.abs(controllers["b"]).sum()) > 0
    # On the same held-out rows, the trained controllers beat the identity (untrained) ones.
    held = jax.tree.map(lambda a: a[:32], tiny["test_rows"])
    identity_ctrl = {"a": controllers["a"], "b": jnp.zeros_like(controllers["b"])}
    steered = steering.loss_fn(controllers, tiny["params"], held, tiny["model"], tiny["env"], layer)
    plain = steering.loss_fn(identity_ctrl, tiny["params"], held, tiny["model"], tiny["env"], layer)
    assert float(steered) < float(plain) - 0.005, (float(steered), float(plain))


def test_ground_truth_switching_applies_the_next_subgoals_controller():
    ctrl = intervention.init_subgoal_controllers(jax.random.PRNGKey(3), 4, 8, 2)
    ctrl["b"] = ctrl["b"].at[2].set(1.0)  # only subgoal 2's controller does anything
    env = gridworld.EnvParams(task_set="posttrain")
    _, state = gridworld.reset(jax.random.PRNGKey(4), env)
    e = jnp.ones(8)
    np.testing.assert_array_equal(steering.ground_truth_switching(ctrl, e, state), e)  # subgoal 0
    later = state.replace(progress=jnp.int32(4))  # colours 0-3 visited: subgoal 2 (colours 4-5)
    assert not np.allclose(steering.ground_truth_switching(ctrl, e, later), e)


def test_colour_success_counts_the_colour_an_episode_failed_on():
    from hrl_internal.analysis.rollout import RolloutResult, colour_success
    # Success after 3 colours (3 of 3), a failure pursuing the 2nd colour (1 of 2), a failure
    # on the first (0 of 1): 4 colours reached of 6 attempted.
    result = RolloutResult(success=np.array([True, False, False]), length=np.array([9, 5, 2]),
                           progress=np.array([3, 1, 0]))
    assert colour_success(result) == 4 / 6
