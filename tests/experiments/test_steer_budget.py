import sys

import pytest

from experiments import steer_budget


@pytest.mark.parametrize("setting, message", [
    ("tasks=0-1-x", "tasks: '0-1-x'"),
    ("train_tasks=0-1-2", "train_tasks: '0-1-2'"),
    ("train_episodes=0", "train_episodes: must be a positive integer"),
    ("base_step=last", "base_step: must be 'latest' or a saved pretraining step"),
    ("form=cubic", "form: must be one of linear, affine"),
    ("depth=3", "unknown setting 'depth'"),
])
def test_bad_settings_are_refused_by_name_before_the_run_is_read(monkeypatch, tmp_path, setting,
                                                                 message):
    # The run directory does not exist: the refusal must come before anything is loaded.
    monkeypatch.setattr(sys, "argv", ["steer_budget", f"--run={tmp_path / 'none'}", setting])
    with pytest.raises(SystemExit, match=message):
        steer_budget.main()
