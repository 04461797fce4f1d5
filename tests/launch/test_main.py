import json
import os
import shutil
import subprocess
import sys

import numpy as np
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
    (["--phases=data,dance"], "--phases", "allowed: data, pretrain, probe, steer, metacontroller"),
    (["--layer=3"], "--layer", "[0, --num_layers=2]"),
    (["--alpha=0.1,-1"], "--alpha", ">= 0"),
    (["--alpha=big"], "--alpha", "numbers"),
    (["--metacontroller_variant=standard,magic"], "--metacontroller_variant", "cotrain"),
    (["--steer_layers=1,9"], "--steer_layers", "[0, 2]"),
    (["--checkpoint_every=15"], "--checkpoint_every", "multiple of --steps_per_call=10"),
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


def test_all_phases_run_record_skip_and_resume(tmp_path):
    workdir = str(tmp_path / "run")
    first = launch(*TINY, f"--workdir={workdir}")
    assert first.returncode == 0, first.stderr
    for key in ("data.expert_success_rate", "pretrain.heldout_action_accuracy",
                "pretrain.rollout_success", "probe.accuracy_by_layer",
                "steer.posttrain_success_by_layer", "metacontroller.switch_f1"):
        assert key in first.stdout, key
    results = json.load(open(os.path.join(workdir, "results.json")))
    assert results["data"]["train_episodes"] == 64
    assert results["data"]["expert_success_rate"] == 1.0
    assert results["data"]["expert_posttrain_success_rate"] == 1.0
    assert len(results["probe"]["accuracy_by_layer"]) == 3  # smoke: 2 layers + embedding
    assert len(results["steer"]["posttrain_success_by_layer"]) == 3
    assert 0.0 <= results["pretrain"]["rollout_success"] <= 1.0
    meta = results["metacontroller"]
    assert 0.0 <= meta["switch_f1"] <= 1.0 and meta["true_switches_per_episode"] > 0
    assert np.isfinite(meta["nll"]) and meta["kl"] >= 0.0
    config = json.load(open(os.path.join(workdir, "config.json")))
    assert config["data"]["train_episodes"] == 64 and config["seed"] == 0
    run = json.load(open(os.path.join(workdir, "run.json")))
    assert run["preset"] == "smoke" and run["jax_version"]
    for name in ("data/train.npz", "data/eval.npz", "data/done.json", "pretrain/metrics.jsonl",
                 "plots/data_episodes.png", "plots/pretrain_curves.png",
                 "plots/probe_accuracy_by_layer.png", "plots/steer_success_by_layer.png",
                 "plots/beta_standard_a0.3.png", "plots/rate_distortion.png",
                 "metacontroller/standard_a0.3/metrics.jsonl"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name

    again = launch(*TINY, f"--workdir={workdir}")
    assert again.returncode == 0 and again.stdout.count("finished earlier; skipping") == 5

    # Lose the last checkpoint and the completion marker, as a crash after step 10 would.
    ckpt_dir = os.path.join(workdir, "pretrain", "checkpoints")
    before = _params(ckpt_dir)
    metrics_before = _metrics(workdir)
    shutil.rmtree(os.path.join(ckpt_dir, "20"))
    os.remove(os.path.join(workdir, "pretrain", "done.json"))
    resumed = launch(*TINY, "--phases=pretrain", f"--workdir={workdir}")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from step 10" in resumed.stdout
    after = _params(ckpt_dir)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert _metrics(workdir) == metrics_before

    other = launch(*TINY, "--seed=1", f"--workdir={workdir}")
    assert other.returncode == 2
    assert "--workdir" in other.stderr and "seed: 0 there, 1 now" in other.stderr


def _params(ckpt_dir):
    import jax
    from hrl_internal.training.checkpoint import Checkpointer
    from hrl_internal.training import pretrain
    from experiments import configs
    config = configs.preset("smoke")
    env = config.gridworld.env_params("pretrain")
    template = pretrain.init_state(jax.random.PRNGKey(0), config.model.transformer(env),
                                   config.pretrain.hyper())
    return jax.tree.leaves(Checkpointer(ckpt_dir).restore(template))


def _metrics(workdir):
    with open(os.path.join(workdir, "pretrain", "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]
