import jax
import numpy as np

from hrl_internal.analysis import switching

# Two episodes packed in one row: steps 0-5 (subgoal 0 then 1 from step 3), steps 6-9 (subgoal 2
# then 3 from step 8), two padding slots.
SEGMENTS = np.array([[0, 0, 0, 0, 0, 0, 1, 1, 1, 1, -1, -1]])
SUBGOALS = np.array([[0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 0, 0]])
MASK = SEGMENTS >= 0


def test_boundaries_exclude_episode_starts_and_padding():
    truth = switching.true_boundaries(SUBGOALS, SEGMENTS, MASK)
    np.testing.assert_array_equal(np.flatnonzero(truth[0]), [3, 8])


def test_segment_starts_add_episode_starts_and_run_under_jit():
    starts = jax.jit(switching.segment_starts)(SUBGOALS, SEGMENTS)
    # 0 and 6 start episodes, 3 and 8 change subgoal, 10 starts the padding.
    np.testing.assert_array_equal(np.flatnonzero(starts[0]), [0, 3, 6, 8, 10])


def test_perfect_gate_scores_one_and_counts_switches():
    beta = np.zeros(SEGMENTS.shape)
    beta[0, [0, 3, 6, 8]] = 1.0  # episode starts fire too, and do not count
    s = switching.switch_scores(beta, SUBGOALS, SEGMENTS, MASK)
    assert s["f1"] == 1.0 and s["precision"] == 1.0 and s["recall"] == 1.0
    assert s["switches_per_episode"] == 1.0 and s["true_switches_per_episode"] == 1.0
    assert s["beta_binary_fraction"] == 1.0


def test_tolerance_and_one_to_one_matching():
    beta = np.zeros(SEGMENTS.shape)
    beta[0, [1, 2]] = 0.9  # both near the boundary at 3: only one may match it
    s = switching.switch_scores(beta, SUBGOALS, SEGMENTS, MASK, tolerance=2)
    assert s["precision"] == 0.5 and s["recall"] == 0.5
    s = switching.switch_scores(beta, SUBGOALS, SEGMENTS, MASK, tolerance=0)
    assert s["f1"] == 0.0


def test_no_match_across_episodes():
    beta = np.zeros(SEGMENTS.shape)
    beta[0, 5] = 1.0  # two steps from neither boundary of its own episode; 8 is in the next
    matched, _, _ = switching.match_counts(
        switching.switch_events(beta, SEGMENTS, MASK), switching.true_boundaries(
            SUBGOALS, SEGMENTS, MASK), SEGMENTS, tolerance=3)
    assert matched == 1  # matches 3 (its own episode), not 8


def test_always_on_gate_has_full_recall_low_precision():
    s = switching.switch_scores(np.ones(SEGMENTS.shape), SUBGOALS, SEGMENTS, MASK)
    assert s["recall"] == 1.0 and s["precision"] < 0.3
