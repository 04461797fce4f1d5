import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--preset=smoke", "--train_episodes=64", "--eval_episodes=16", "--chunk_episodes=64",
        "--rl_methods=internal_rl"]  # raw_action_rl has its own tests; one method keeps this fast


def launch(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "launch.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


# Every config field's check, in process (the launcher calls the same ``configs.validate``).
@pytest.mark.parametrize("overrides,flag,allowed", [
    (dict(env="atari"), "--env", "gridworld"),
    (dict(grid_size=0), "--grid_size", "positive"),
    (dict(train_episodes=-5), "--train_episodes", "positive"),
    (dict(epsilon=1.5), "--epsilon", "[0, 1]"),
    (dict(num_objects=4), "--num_objects", ">= 8"),
    (dict(grid_size=3), "--num_objects", "fit in"),
    (dict(rl_methods="internal_rl,compile"), "--rl_methods", "raw_action_rl"),
    (dict(rl_methods="cotrain"), "--rl_methods", "add it to --metacontroller_variant"),
    (dict(rl_task="0-1-2"), "--rl_task", "colours joined by '-'"),
    (dict(rl_max_steps=101), "--rl_max_steps", "<= --max_steps=100"),
    (dict(layer=3), "--layer", "[0, --num_layers=2]"),
    (dict(alpha="0.1,-1"), "--alpha", ">= 0"),
    (dict(alpha="big"), "--alpha", "numbers"),
    (dict(metacontroller_variant="standard,magic"), "--metacontroller_variant", "cotrain"),
    (dict(steer_layers="1,9"), "--steer_layers", "[0, 2]"),
    (dict(checkpoint_every=15), "--checkpoint_every", "multiple of --steps_per_call=10"),
])
def test_bad_config_names_the_field_and_what_is_allowed(overrides, flag, allowed):
    from experiments import configs
    config = configs.replace_fields(configs.preset("smoke"), **overrides)
    with pytest.raises(configs.ConfigError) as error:
        configs.validate(config)
    assert flag in str(error.value) and allowed in str(error.value), str(error.value)


@pytest.mark.parametrize("args,flag,allowed", [
    (["--preset=fast"], "--preset", "smoke, cpu, paper"),
    (["--grid_size=0"], "--grid_size", "positive"),
    (["--phases=data,dance"], "--phases", "allowed: data, pretrain, probe, steer, metacontroller"),
    (["--grid_size=seven"], "--grid_size", "int"),
    (["--no_such_flag=1"], "no_such_flag", "Unknown"),
    (["--workdir=/proc/hrl_internal_test"], "--workdir", "not a writable directory"),
])
def test_bad_input_is_one_line_exit_2_before_compute(tmp_path, args, flag, allowed):
    if not any(a.startswith("--workdir") for a in args):
        args = [*args, f"--workdir={tmp_path / 'run'}"]
    if not any(a.startswith("--preset") for a in args):
        args = ["--preset=smoke", *args]
    result = launch(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert flag in lines[0] and allowed in lines[0], lines[0]
    assert not os.path.exists(tmp_path / "run" / "data"), "nothing ran"


def test_all_phases_run_record_skip_and_refuse_another_config(tmp_path):
    workdir = str(tmp_path / "run")
    first = launch(*TINY, f"--workdir={workdir}")
    assert first.returncode == 0, first.stderr
    for key in ("data.expert_success_rate", "pretrain.heldout_action_accuracy",
                "pretrain.rollout_success", "probe.accuracy_by_layer",
                "steer.posttrain_success_by_layer", "metacontroller.switch_f1",
                "internal_rl.internal_rl.success_rate"):
        assert key in first.stdout, key
    results = json.load(open(os.path.join(workdir, "results.json")))
    assert results["data"]["train_episodes"] == 64
    assert results["data"]["expert_success_rate"] == 1.0
    assert results["data"]["expert_posttrain_success_rate"] == 1.0
    assert len(results["probe"]["accuracy_by_layer"]) == 3  # smoke: 2 layers + embedding
    assert results["steer"]["layers"] == [1]  # smoke steers at one layer
    assert 0.0 <= results["pretrain"]["rollout_success"] <= 1.0
    meta = results["metacontroller"]
    assert 0.0 <= meta["switch_f1"] <= 1.0 and meta["true_switches_per_episode"] > 0
    assert np.isfinite(meta["nll"]) and meta["kl"] >= 0.0
    rl = results["internal_rl"]
    assert len(rl["internal_rl.success_rate_per_seed"]) == 2
    assert rl["internal_rl.initial_episodes"] >= 64 and rl["internal_rl.episodes"] > 0
    assert len(rl["internal_rl.curve"]) == 4 and rl["internal_rl.env_steps_per_decision"] >= 1.0
    config = json.load(open(os.path.join(workdir, "config.json")))
    assert config["data"]["train_episodes"] == 64 and config["seed"] == 0
    run = json.load(open(os.path.join(workdir, "run.json")))
    assert run["preset"] == "smoke" and run["jax_version"]
    for name in ("data/train.npz", "data/eval.npz", "data/done.json", "pretrain/metrics.jsonl",
                 "plots/data_episodes.png", "plots/pretrain_curves.png",
                 "plots/probe_accuracy_by_layer.png", "plots/steer_success_by_layer.png",
                 "plots/beta_standard_a0.3.png", "plots/rate_distortion.png",
                 "metacontroller/standard_a0.3/metrics.jsonl", "plots/internal_rl_success.png",
                 "internal_rl/internal_rl/metrics.jsonl"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name

    again = launch(*TINY, f"--workdir={workdir}")
    assert again.returncode == 0 and again.stdout.count("finished earlier; skipping") == 6

    other = launch(*TINY, "--seed=1", f"--workdir={workdir}")
    assert other.returncode == 2
    assert "--workdir" in other.stderr and "seed: 0 there, 1 now" in other.stderr
