import sys

import pytest

from experiments import steer_budget


@pytest.mark.parametrize("setting, message", [
    ("tasks=0-1-x", "tasks: '0-1-x'"),
    ("train_tasks=0-1-2", "train_tasks: '0-1-2'"),
    ("train_tasks=run+0-1-x", "train_tasks: '0-1-x'"),
    ("train_episodes=0", "train_episodes: must be a positive integer"),
    ("base_step=last", "base_step: must be 'latest' or a saved pretraining step"),
    ("form=cubic", "form: must be one of linear, affine"),
    ("depth=3", "unknown setting 'depth'"),
    ("forget=none,all", "forget: a comma-separated list of none, lower, upper, both"),
    ("train_forget=all", "train_forget: must be one of none, lower, upper, both"),
])
def test_bad_settings_are_refused_by_name_before_the_run_is_read(monkeypatch, tmp_path, setting,
                                                                 message):
    # The run directory does not exist: the refusal must come before anything is loaded.
    monkeypatch.setattr(sys, "argv", ["steer_budget", f"--run={tmp_path / 'none'}", setting])
    with pytest.raises(SystemExit, match=message):
        steer_budget.main()


def test_pair_start_wrong_reads_which_colour_a_later_pair_start_went_to():
    import numpy as np
    # The post-training prefix 0-1-2-3-4-5; pretraining shows 01 -> 45, 01 -> 67 and 23 -> 01.
    seen = ((0, 1, 4, 5, 2, 3), (0, 1, 6, 7, 2, 3), (2, 3, 0, 1, 4, 5))
    counts = np.zeros((6, 8), np.int64)
    counts[0, 5] = 9  # the first pair start has no history: not counted
    counts[2, 4], counts[2, 6], counts[2, 3] = 3, 2, 1  # after 01: seen successors 4, 6; own 3
    counts[4, 0], counts[4, 7] = 2, 2  # after 23: 0 is a seen successor; 7 is neither
    counts[4, 3] = 5  # back onto 3, the colour just left
    got = steer_budget.pair_start_wrong(counts, (0, 1, 2, 3, 4, 5), seen)
    assert got == {"count": 15, "to_seen_successor": 7 / 15, "to_own_second_colour": 1 / 15,
                   "to_colour_just_left": 5 / 15}
