import jax
import numpy as np

from hrl_internal.analysis import bayes
from hrl_internal.data import dataset
from hrl_internal.envs.gridworld import EnvParams

PARAMS = EnvParams()


def _episodes(n=64, seed=0, params=PARAMS, epsilon=0.0):
    return dataset.generate(jax.random.split(jax.random.PRNGKey(seed), n), params, epsilon)


def test_predictive_is_a_distribution_and_beats_uniform():
    episodes = _episodes()
    ref = bayes.reference(episodes, PARAMS)
    mask = np.asarray(episodes.mask)
    np.testing.assert_allclose(np.asarray(ref.action_probs.sum(-1))[mask], 1.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ref.subgoal_probs.sum(-1))[mask], 1.0, atol=1e-5)
    s = bayes.scores(episodes, PARAMS)
    # The task is hidden, yet the history reveals most of it.
    assert s["nll"] < 0.5 * np.log(4)
    assert s["accuracy"] > 0.75
    assert s["subgoal_accuracy"] > 0.7


def test_first_step_knows_nothing_of_the_task():
    episodes = _episodes()
    ref = bayes.reference(episodes, PARAMS)
    # Each colour pair starts four of the sixteen pretraining tasks.
    np.testing.assert_allclose(np.asarray(ref.subgoal_probs[:, 0]), 0.25, atol=1e-6)


def test_single_task_set_is_known_exactly():
    post = EnvParams(task_set="posttrain")
    episodes = _episodes(16, seed=1, params=post)
    ref = bayes.reference(episodes, post)
    mask = np.asarray(episodes.mask)
    taken = np.take_along_axis(np.asarray(ref.action_probs),
                               np.asarray(episodes.actions)[..., None], -1)[..., 0]
    # With one task the expert's own policy is the predictor: every expert move has mass >= 1/4.
    assert np.all(taken[mask] >= 0.25 - 1e-3)
    np.testing.assert_array_equal(np.argmax(np.asarray(ref.subgoal_probs), -1)[mask],
                                  np.asarray(episodes.subgoals)[mask])


def test_noisy_actions_do_not_rule_out_the_true_task():
    episodes = _episodes(32, seed=2, epsilon=0.2)
    ref = bayes.reference(episodes, PARAMS)
    assert np.all(np.isfinite(np.asarray(ref.action_probs)))
    assert bayes.scores(episodes, PARAMS)["subgoal_accuracy"] > 0.5


def test_next_colour_reference_caps_above_the_hidden_task_predictor():
    episodes = _episodes()
    hidden, told = bayes.scores(episodes, PARAMS), bayes.next_colour_scores(episodes, PARAMS)
    # Knowing the task can only help, and the expert's tie-break stays unknowable: every expert
    # move has probability >= 1/4 (at most four equally short moves) and the NLL stays above 0.
    assert told["nll"] < hidden["nll"] - 0.05
    assert told["accuracy"] > hidden["accuracy"]
    assert 0.0 < told["nll"] < np.log(4)
    assert told["accuracy"] < 0.99


def test_next_colour_reference_equals_the_bayes_predictor_on_one_task():
    post = EnvParams(task_set="posttrain")
    episodes = _episodes(16, seed=1, params=post)
    hidden, told = bayes.scores(episodes, post), bayes.next_colour_scores(episodes, post)
    np.testing.assert_allclose(told["nll"], hidden["nll"], atol=1e-4)
    np.testing.assert_allclose(told["accuracy"], hidden["accuracy"], atol=1e-6)
