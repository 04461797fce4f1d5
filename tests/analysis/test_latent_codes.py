import numpy as np

from hrl_internal.analysis import latent_codes


def test_codes_by_subgoal_averages_the_code_in_force_mid_segment():
    # Two packed episodes in one row: subgoals 0,0,0,2,2 | 1,1 (then padding).
    subgoals = np.array([[0, 0, 0, 2, 2, 1, 1, 0]])
    segments = np.array([[0, 0, 0, 0, 0, 1, 1, 2]])
    mask = np.array([[1, 1, 1, 1, 1, 1, 1, 0]], bool)
    z = np.arange(8, dtype=float).reshape(1, 8, 1) * np.ones((1, 1, 2))
    codes, counts = latent_codes.codes_by_subgoal(z, subgoals, segments, mask)
    np.testing.assert_array_equal(counts, [1, 1, 1, 0])
    np.testing.assert_array_equal(codes[0], [1.0, 1.0])  # steps 0..2 -> middle 1
    np.testing.assert_array_equal(codes[2], [3.0, 3.0])  # steps 3..4 -> 3
    np.testing.assert_array_equal(codes[1], [5.0, 5.0])  # steps 5..6 (a new episode) -> 5
    np.testing.assert_array_equal(codes[3], [0.0, 0.0])  # never seen


def test_same_task_partner_pairs_other_episodes_of_the_same_task():
    task_id = np.array([0, 1, 0, 2, 1, 0, 1, 1])
    partner = latent_codes.same_task_partner(task_id, seed=3)
    np.testing.assert_array_equal(task_id[partner], task_id)  # same task
    shared = np.array([np.sum(task_id == t) > 1 for t in task_id])
    assert np.all(partner[shared] != np.flatnonzero(shared))  # never itself when it can be
    assert partner[3] == 3  # the only episode of task 2 keeps its own codes
    for t in (0, 1):  # a permutation within each task: every episode lends its codes once
        members = np.flatnonzero(task_id == t)
        assert sorted(partner[members]) == sorted(members)
