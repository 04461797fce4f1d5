import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--preset=smoke", "--train_episodes=64", "--eval_episodes=16", "--chunk_episodes=64"]


def launch(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "launch.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args,flag,allowed", [
    (["--preset=fast"], "--preset", "smoke, cpu, paper"),
    (["--env=atari"], "--env", "gridworld"),
    (["--grid_size=0"], "--grid_size", "positive"),
    (["--train_episodes=-5"], "--train_episodes", "positive"),
    (["--epsilon=1.5"], "--epsilon", "[0, 1]"),
    (["--num_objects=4"], "--num_objects", ">= 8"),
    (["--grid_size=3"], "--num_objects", "fit in"),
    (["--phases=data,dance"], "--phases", "allowed: data"),
    (["--grid_size=seven"], "--grid_size", "int"),
    (["--no_such_flag=1"], "no_such_flag", "Unknown"),
    (["--workdir=/proc/hrl_internal_test"], "--workdir", "not a writable directory"),
])
def test_bad_input_is_one_line_exit_2_before_compute(tmp_path, args, flag, allowed):
    if not any(a.startswith("--workdir") for a in args):
        args = [*args, f"--workdir={tmp_path / 'run'}"]
    result = launch(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert flag in lines[0] and allowed in lines[0], lines[0]
    assert not os.path.exists(tmp_path / "run" / "data"), "nothing ran"


def test_data_phase_runs_records_and_skips_when_finished(tmp_path):
    workdir = str(tmp_path / "run")
    first = launch(*TINY, f"--workdir={workdir}")
    assert first.returncode == 0, first.stderr
    assert "data.expert_success_rate" in first.stdout and "train_episodes" in first.stdout
    results = json.load(open(os.path.join(workdir, "results.json")))
    assert results["data"]["train_episodes"] == 64
    assert results["data"]["expert_success_rate"] == 1.0
    assert results["data"]["expert_posttrain_success_rate"] == 1.0
    config = json.load(open(os.path.join(workdir, "config.json")))
    assert config["data"]["train_episodes"] == 64 and config["seed"] == 0
    run = json.load(open(os.path.join(workdir, "run.json")))
    assert run["preset"] == "smoke" and run["jax_version"]
    for name in ("train.npz", "eval.npz", "done.json"):
        assert os.path.exists(os.path.join(workdir, "data", name))
    assert os.path.getsize(os.path.join(workdir, "plots", "data_episodes.png")) > 1000

    again = launch(*TINY, f"--workdir={workdir}")
    assert again.returncode == 0 and "finished earlier; skipping" in again.stdout

    other = launch(*TINY, "--seed=1", f"--workdir={workdir}")
    assert other.returncode == 2
    assert "--workdir" in other.stderr and "seed: 0 there, 1 now" in other.stderr
