import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.analysis import rollout, steering
from hrl_internal.data import packing
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
    # An early end is a wrong colour entered: the episode ends on a coloured cell. A success ends
    # on its task's last colour, the second of a pair (odd).
    assert np.all(plain.final_colour[early] >= 0)
    assert np.all(plain.final_colour[plain.success] % 2 == 1)


def test_forgetting_at_subgoal_changes_changes_only_episodes_that_changed_subgoal(tiny):
    args = (jax.random.PRNGKey(3), tiny["params"], tiny["model"], tiny["env"], 256)
    plain = rollout.rollout(*args, layer=1, intervene=identity)
    for forget in ("lower", "upper", "both"):
        forgot = rollout.rollout(*args, layer=1, intervene=identity, forget=forget)
        # Until an episode's first subgoal is done nothing is forgotten: the same draws follow.
        first = np.asarray(plain.progress) < 2
        assert first.any() and (~first).any()
        for a, b in zip(plain, forgot):
            np.testing.assert_array_equal(np.asarray(a)[first], np.asarray(b)[first])
    with pytest.raises(ValueError, match="forget must be one of none, lower, upper, both"):
        rollout.rollout(*args, forget="all")


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


def test_steering_controllers_lower_the_steered_loss_at_every_layer(tiny):
    layers = (0, 1, 2)
    controllers, losses = steering.train(
        jax.random.PRNGKey(2), tiny["params"], tiny["rows"], model=tiny["model"], env=tiny["env"],
        layers=layers, rank=4, steps=100, batch_size=8, learning_rate=3e-3)
    losses = np.asarray(losses)
    assert losses.shape == (100, len(layers)) and np.all(np.isfinite(losses))
    assert np.all(np.abs(np.asarray(controllers["b"])).sum(axis=(1, 2, 3)) > 0)
    # On the same held-out rows, each layer's trained controllers beat the identity ones.
    held = jax.tree.map(lambda a: a[:32], tiny["test_rows"])
    identity_ctrl = {"a": controllers["a"], "b": jnp.zeros_like(controllers["b"])}
    args = dict(model=tiny["model"], env=tiny["env"], layers=layers)
    steered = np.asarray(steering.evaluate(controllers, tiny["params"], held, **args))
    plain = np.asarray(steering.evaluate(identity_ctrl, tiny["params"], held, **args))
    assert np.all(steered < plain - 0.005), (steered, plain)


def test_identity_controllers_give_the_base_models_own_loss(tiny):
    from hrl_internal.models import transformer
    from hrl_internal.training.losses import masked_mean, sequence_losses
    held = jax.tree.map(lambda a: a[:8], tiny["test_rows"])
    layers = (0, 2)
    ctrl = jax.vmap(lambda k: intervention.init_subgoal_controllers(
        k, steering.NUM_SUBGOALS, tiny["model"].d_model, 4))(jax.random.split(
            jax.random.PRNGKey(5), len(layers)))
    steered = steering.evaluate(ctrl, tiny["params"], held, model=tiny["model"], env=tiny["env"],
                                layers=layers)
    obs, next_obs = packing.observations(held, tiny["env"])
    outputs, _ = transformer.apply(tiny["params"], obs, tiny["model"], segments=held.segments)
    nll = masked_mean(sequence_losses(outputs, held.actions, next_obs)[0],
                      held.mask.astype(jnp.float32))
    # The shared lower pass and per-layer upper passes equal the plain forward pass.
    np.testing.assert_allclose(np.asarray(steered), float(nll), rtol=1e-5)


def test_each_layers_loss_reaches_only_its_own_controllers(tiny):
    """Training the layers together is training each alone: the summed loss separates."""
    args = dict(model=tiny["model"], env=tiny["env"], rank=4, steps=5, batch_size=4,
                learning_rate=3e-3)
    both, _ = steering.train(jax.random.PRNGKey(6), tiny["params"], tiny["rows"], layers=(1, 2),
                             **args)
    with pytest.raises(ValueError, match="ascending"):
        steering.train(jax.random.PRNGKey(6), tiny["params"], tiny["rows"], layers=(2, 1), **args)
    grads = jax.grad(lambda c: steering.loss_fn(c, tiny["params"],
                                                jax.tree.map(lambda a: a[:4], tiny["rows"]),
                                                tiny["model"], tiny["env"], (1, 2))[0])(both)
    # Layer 1's loss puts no gradient on layer 2's controllers.
    assert float(jnp.abs(grads["b"][1]).sum()) == 0.0
    assert float(jnp.abs(grads["b"][0]).sum()) > 0.0


def test_training_with_forget_scores_a_subgoal_without_the_steps_before_it(tiny):
    rows = jax.tree.map(lambda a: np.asarray(a[:8]), tiny["test_rows"])
    scoped = np.asarray(packing.subgoal_segments(rows))
    first = scoped == scoped[:, :1]  # each row's first subgoal segment
    assert (~first & rows.mask).any()
    # Score only the later segments; move the agent everywhere in the first one.
    later = rows._replace(mask=rows.mask & ~first)
    moved = later._replace(agent_cells=np.where(first, (rows.agent_cells + 1) % tiny["env"].grid_size ** 2,
                                                rows.agent_cells))
    ctrl = jax.vmap(lambda k: intervention.init_subgoal_controllers(
        k, steering.NUM_SUBGOALS, tiny["model"].d_model, 4))(jax.random.split(
            jax.random.PRNGKey(6), 1))
    loss = lambda r, forget: float(steering.loss_fn(ctrl, tiny["params"], r, tiny["model"],
                                                    tiny["env"], (1,), forget=forget)[0])
    assert abs(loss(later, "both") - loss(moved, "both")) < 1e-6
    assert abs(loss(later, "none") - loss(moved, "none")) > 1e-4, "the history mattered"
    assert abs(loss(later, "upper") - loss(moved, "upper")) > 1e-4, "below the layer it is kept"
    with pytest.raises(ValueError, match="forget must be one of"):
        loss(later, "all")


def test_start_weighting_scores_the_first_steps_of_each_subgoal_more(tiny):
    """Weight w on the first k steps of every subgoal: the loss is the weighted mean, so with
    w = 1 it is the plain loss and with a huge w it is the mean over those steps alone."""
    rows = jax.tree.map(lambda a: a[:8], tiny["test_rows"])
    layers = (1,)
    ctrl = jax.vmap(lambda k: intervention.init_subgoal_controllers(
        k, steering.NUM_SUBGOALS, tiny["model"].d_model, 4))(jax.random.split(
            jax.random.PRNGKey(5), 1))
    ctrl["b"] = ctrl["b"] + 0.05  # not the identity, so the steps differ in loss
    loss = lambda *a: float(steering.loss_fn(ctrl, tiny["params"], rows, tiny["model"],
                                             tiny["env"], layers, *a)[0])
    plain, same = loss(), loss(3, 1.0)
    starts_only = loss(3, 1e9)
    only_starts = rows._replace(mask=np.asarray(rows.mask) & (
        np.asarray(packing.steps_into_subgoal(rows)) < 3))
    expected = float(steering.loss_fn(ctrl, tiny["params"], only_starts, tiny["model"],
                                      tiny["env"], layers)[0])
    np.testing.assert_allclose(same, plain, rtol=1e-6)
    np.testing.assert_allclose(starts_only, expected, rtol=1e-4)
    assert abs(starts_only - plain) > 1e-3  # the first steps of a subgoal are harder


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


def test_failure_anatomy_splits_by_pair_position_and_cause():
    from hrl_internal.analysis.rollout import RolloutResult, failure_anatomy
    # A success through 4 colours; a wrong colour pursuing the 2nd (a pair's second colour); the
    # time limit pursuing the 3rd (a pair's first); a wrong colour pursuing the 1st.
    result = RolloutResult(success=np.array([True, False, False, False]),
                           length=np.array([20, 6, 50, 3]), progress=np.array([4, 1, 2, 0]))
    got = failure_anatomy(result, max_steps=50)
    # First colours reached: 2 + 1 + 1 + 0 = 4, failed on 2 (progress 2 and 0); second colours
    # reached: 2 + 0 + 1 + 0 = 3, failed on 1.
    assert got == {"pair_start_colour_success": 4 / 6, "pair_second_colour_success": 3 / 4,
                   "time_limit_share": 1 / 3}


def test_wrong_colours_counts_early_failures_by_position_and_colour():
    from hrl_internal.analysis.rollout import RolloutResult, wrong_colours
    # A success (ends on its last colour: not counted); colour 5 entered pursuing the 2nd colour;
    # the time limit pursuing the 3rd (standing on colour 1: not counted); colour 3 entered
    # pursuing the 1st, twice.
    result = RolloutResult(success=np.array([True, False, False, False, False]),
                           length=np.array([20, 6, 50, 3, 4]), progress=np.array([4, 1, 2, 0, 0]),
                           final_colour=np.array([3, 5, 1, 3, 3]))
    counts = wrong_colours(result, max_steps=50, num_colours=8, task_len=4)
    expected = np.zeros((4, 8), np.int64)
    expected[1, 5], expected[0, 3] = 1, 2
    np.testing.assert_array_equal(counts, expected)


def test_training_in_chunks_equals_one_call(tiny):
    """What makes a resumed steer phase equal an uninterrupted one: batches drawn per step."""
    layers = (1,)
    args = dict(model=tiny["model"], env=tiny["env"], layers=layers, batch_size=4,
                learning_rate=3e-3)
    key = jax.random.PRNGKey(7)
    start = steering.init_state(key, tiny["model"], layers, 4, 3e-3)
    whole, whole_losses = steering.train_steps(start, tiny["params"], tiny["rows"], key,
                                               num_steps=6, **args)
    half, first = steering.train_steps(start, tiny["params"], tiny["rows"], key, num_steps=3,
                                       **args)
    rest, second = steering.train_steps(half, tiny["params"], tiny["rows"], key, num_steps=3,
                                        **args)
    assert int(rest.step) == 6
    np.testing.assert_allclose(np.concatenate([first, second]), whole_losses, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(rest.controllers), jax.tree.leaves(whole.controllers)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
