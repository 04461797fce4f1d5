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


def test_code_probe_reads_a_subgoal_the_codes_carry_and_not_one_they_do_not():
    import jax
    rng = np.random.default_rng(0)
    subgoals = rng.integers(0, 4, (40, 30))
    mask = rng.random((40, 30)) < 0.8
    noise = rng.normal(size=(40, 30, 8))
    carrying = noise.copy()
    carrying[..., :4] += 3.0 * np.eye(4)[subgoals]  # the subgoal, one direction each
    key = jax.random.PRNGKey(0)
    named = latent_codes.code_probe(key, carrying, subgoals, mask, steps=300)
    blind = latent_codes.code_probe(key, noise, subgoals, mask, steps=300)
    assert named["probe_accuracy"] > 0.9 and named["probe_knn_accuracy"] > 0.9, named
    assert blind["probe_accuracy"] < blind["probe_majority"] + 0.05, blind
    assert blind["probe_knn_accuracy"] < blind["probe_majority"] + 0.08, blind
    # A subgoal on a ring (no linear read-out separates the classes): the vote finds it.
    ring = noise.copy()
    radius = np.asarray([1.0, 3.0, 5.0, 7.0])[subgoals]
    angle = rng.uniform(0, 2 * np.pi, subgoals.shape)
    ring[..., 0], ring[..., 1] = radius * np.cos(angle), radius * np.sin(angle)
    ring[..., 2:] *= 0.1
    curved = latent_codes.code_probe(key, ring, subgoals, mask, steps=300)
    assert curved["probe_knn_accuracy"] > 0.8 > curved["probe_accuracy"], curved
    assert 0.2 < blind["probe_majority"] < 0.35
