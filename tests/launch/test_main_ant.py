import dataclasses
import json
import os

import numpy as np
import pytest

from experiments import configs
from hrl_internal.data import ant_dataset, packing
from hrl_internal.data.dataset import DatasetError
from hrl_internal.envs import ant_pinpad
from tests.launch.resume import launch

# The ant's smoke preset, one RL method (raw-action RL on the ant is covered in tests/rl).
ANT = ["--env=ant", "--preset=smoke", "--rl_methods=internal_rl"]


@pytest.mark.longest
def test_ant_runs_every_phase_through_the_shared_code(tmp_path):
    workdir = str(tmp_path / "ant")
    first = launch(*ANT, f"--workdir={workdir}")
    assert first.returncode == 0, first.stderr[-3000:]
    results = json.load(open(os.path.join(workdir, "results.json")))
    assert set(results) == {"data", "pretrain", "metacontroller", "internal_rl", "findings"}
    data = results["data"]
    assert data["train_episodes"] == 24 and data["expert_updates"] == 2
    assert 0.0 <= data["expert_pretrain_success"] <= 1.0
    pretrain = results["pretrain"]
    assert pretrain["steps"] == 10
    assert np.isfinite(pretrain["heldout_action_nll"]) and pretrain["heldout_action_mse"] >= 0.0
    meta = results["metacontroller"]
    assert np.isfinite(meta["nll"]) and meta["kl"] >= 0.0 and 0.0 <= meta["switch_f1"] <= 1.0
    assert "action_mse" in meta
    rl = results["internal_rl"]
    assert 0.0 <= rl["internal_rl.success_rate"] <= 1.0
    assert "internal_rl.success_rate_normalised" in rl
    for plot in ("expert_curves.png", "data_episodes.png", "pretrain_curves.png", "beta_standard_a0.3.png",
                 "internal_rl_success.png"):
        assert os.path.exists(os.path.join(workdir, "plots", plot)), plot
    check_demonstrations(os.path.join(workdir, "data", "train.npz"))


def test_ant_refuses_phases_it_lacks(tmp_path):
    result = launch(*ANT, "--phases=probe", f"--workdir={tmp_path / 'ant'}")
    assert result.returncode == 2
    assert "--phases: phase 'probe' is not implemented for --env=ant" in result.stderr


def check_demonstrations(path):
    """The expert's saved episodes: whole episodes, actions in the actuators' box, the first label
    the task's first colour; they load only for their own parameters and pack losslessly."""
    env = configs.preset("smoke", env="ant").ant.env_params("pretrain")
    episodes, _ = ant_dataset.load(path, env)
    n, t = 24, env.max_steps
    assert episodes.obs.shape == (n, t + 1, env.obs_size)
    assert episodes.actions.shape == (n, t, ant_pinpad.ACTION_SIZE)
    mask = episodes.mask
    lengths = mask.sum(1)
    assert mask[:, 0].all()
    assert all(mask[i, :lengths[i]].all() and not mask[i, lengths[i]:].any() for i in range(n))
    assert np.abs(episodes.actions).max() <= 1.0 and np.isfinite(episodes.obs).all()
    tasks = np.asarray(ant_pinpad.PRETRAIN_TASKS)
    np.testing.assert_array_equal(episodes.subgoals[:, 0], tasks[episodes.task_id, 0])
    with pytest.raises(DatasetError, match="generated for"):
        ant_dataset.load(path, dataclasses.replace(env, max_steps=30))
    rows = packing.pack_dense(episodes, t)
    assert rows.mask.sum() == mask.sum()
    for r in range(rows.num_rows):
        for segment in np.unique(rows.segments[r][rows.mask[r]]):
            slots = rows.segments[r] == segment
            i = int(rows.episode[r][slots][0])
            np.testing.assert_array_equal(rows.obs[r][slots], episodes.obs[i, :lengths[i]])
            np.testing.assert_array_equal(rows.next_obs[r][slots],
                                          episodes.obs[i, 1:lengths[i] + 1])
            np.testing.assert_array_equal(rows.actions[r][slots],
                                          episodes.actions[i, :lengths[i]])
