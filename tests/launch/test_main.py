import json
import os

import numpy as np
import pytest

from tests.launch import resume
from tests.launch.resume import TINY, launch


# Every config field's check, in process (the launcher calls the same ``configs.validate``).
@pytest.mark.parametrize("overrides,flag,allowed", [
    (dict(env="atari"), "--env", "gridworld"),
    (dict(grid_size=0), "--grid_size", "positive"),
    (dict(train_episodes=-5), "--train_episodes", "positive"),
    (dict(epsilon=1.5), "--epsilon", "[0, 1]"),
    (dict(num_objects=4), "--num_objects", ">= 8"),
    (dict(grid_size=3), "--num_objects", "fit in"),
    (dict(rl_methods="internal_rl,options"), "--rl_methods", "raw_action_rl"),
    (dict(rl_methods="cotrain"), "--rl_methods", "add it to --metacontroller_variant"),
    (dict(rl_task="0-1-2"), "--rl_task", "colours joined by '-'"),
    (dict(rl_max_steps=101), "--rl_max_steps", "<= --max_steps=100"),
    (dict(layer=3), "--layer", "[0, --num_layers=2]"),
    (dict(alpha="0.1,-1"), "--alpha", ">= 0"),
    (dict(alpha="big"), "--alpha", "numbers"),
    (dict(metacontroller_variant="standard,magic"), "--metacontroller_variant", "cotrain"),
    (dict(steer_layers="1,9"), "--steer_layers", "[0, 2]"),
    (dict(steer_forget="past"), "--steer_forget", "none, lower, upper, both"),
    (dict(rl_forget="past"), "--rl_forget", "none, lower, upper, both"),
    (dict(checkpoint_every=15), "--checkpoint_every", "multiple of --steps_per_call=10"),
    (dict(expert_walk_updates=-1), "--expert_walk_updates", ">= 0"),
    (dict(expert_control_cost=-0.5), "--expert_control_cost", ">= 0"),
    (dict(expert_demo_action="greedy"), "--expert_demo_action", "mean, sample"),
    (dict(sequence_embedding="pooled"), "--sequence_embedding", "episode, step"),
    (dict(rl_methods="internal_rl,compile"), "--rl_methods", "add it to --metacontroller_variant"),
    (dict(compile_alpha="0.03,-1"), "--compile_alpha", ">= 0"),
    (dict(max_segments=1), "--max_segments", ">= 2"),
    (dict(compile_boundary_alpha=-0.5), "--compile_boundary_alpha", ">= 0, or -1"),
    (dict(compile_alpha="0,0.1", compile_boundary_alpha=0.03), "--compile_boundary_alpha",
     "--compile_alpha > 0"),
    (dict(segment_temperature=0.0), "--segment_temperature", "> 0"),
    (dict(policy_block="mlp"), "--policy_block", "rglru, residual"),
    (dict(discrete_code_head="softmax"), "--discrete_code_head", "gaussian, categorical"),
    (dict(codebook_size=1), "--codebook_size", "0 (the Gaussian head) or in [2, 256]"),
    (dict(env="ant", metacontroller_variant="standard,compile"), "--metacontroller_variant",
     "--env=gridworld"),
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


@pytest.mark.longest
def test_all_phases_run_record_skip_resume_after_kills_and_rerun_what_a_new_flag_changes(tmp_path):
    """One flow, so every launcher process after the first reuses its compiled programs."""
    workdir = str(tmp_path / "run")
    first = launch(*TINY, f"--workdir={workdir}")
    assert first.returncode == 0, first.stderr
    for key in ("data.expert_success_rate", "pretrain.heldout_action_accuracy",
                "pretrain.rollout_success", "probe.accuracy_by_layer",
                "steer.posttrain_success_by_layer", "metacontroller.switch_f1",
                "internal_rl.internal_rl.success_rate"):
        assert key in first.stdout, key
    assert "this command:" in first.stdout and "of which compiling" in first.stdout
    results = json.load(open(os.path.join(workdir, "results.json")))
    first_results = json.loads(json.dumps(results))
    findings = results.pop("findings")  # the paper's findings, judged (launch/findings.py)
    assert "findings" in first.stdout and "base model competence" in first.stdout
    assert findings["base model competence"]["holds"] is False  # a 20-step smoke base
    assert all("compile_seconds" in figures for figures in results.values())
    assert results["data"]["train_episodes"] == 64
    assert results["data"]["expert_success_rate"] == 1.0
    assert results["data"]["expert_posttrain_success_rate"] == 1.0
    assert len(results["probe"]["accuracy_by_layer"]) == 3  # smoke: 2 layers + embedding
    assert results["steer"]["layers"] == [1]  # smoke steers at one layer
    assert 0.0 <= results["pretrain"]["rollout_success"] <= 1.0
    meta = results["metacontroller"]
    assert 0.0 <= meta["switch_f1"] <= 1.0 and meta["true_switches_per_episode"] > 0
    for name in ("inferred", "same_task", "prior"):  # the codes replayed in another layout too
        assert 0.0 <= meta[f"latent_code_replay_{name}_success"] <= 1.0, name
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
                 "plots/steer_nll_by_layer.png", "steer/metrics.jsonl",
                 "plots/beta_standard_a0.3.png", "plots/rate_distortion.png",
                 "metacontroller/standard_a0.3/metrics.jsonl", "plots/internal_rl_success.png",
                 "internal_rl/internal_rl/metrics.jsonl"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name

    again = launch(*TINY, f"--workdir={workdir}")
    assert again.returncode == 0 and again.stdout.count("finished earlier; skipping") == 6

    # The offline check of a finished run's codes reproduces the phase's own figures.
    from experiments import code_meaning
    offline = code_meaning.code_meaning(workdir)
    for name in ("inferred", "same_task", "prior"):
        assert offline[f"replay_{name}_success"] == meta[f"latent_code_replay_{name}_success"]
    assert offline["reach_matched_rate"] == meta["latent_code_reach_matched_rate"]

    # A codebook of the run's own switch codes: the policy's head is categorical over it.
    from experiments import configs
    from launch import report
    from launch.phases import internal_rl as rl_phase
    from launch.rundir import RunDir
    config = configs.replace_fields(report.load_run(workdir)[1], codebook_size=4)
    meth = rl_phase.method(config, RunDir(workdir), "internal_rl")
    book = np.asarray(meth.frozen.codebook)
    assert book.shape == (4, config.meta.latent_dim) and np.all(np.isfinite(book))
    assert len({tuple(row) for row in book.round(6)}) == 4  # four distinct centroids
    assert meth.spec.policy.head == "categorical" and meth.spec.policy.latent_dim == 4
    assert meth.figures["codebook_codes_per_episode"] >= 1.0  # each episode's first code at least
    assert 0.0 < meth.figures["codebook_subgoal_purity"] <= 1.0

    # The base's held-out NLL split by whether the next colour is knowable adds up, and where it
    # is knowable the Bayes-optimal predictor is the next-colour reference.
    from experiments import base_anatomy
    parts = base_anatomy.anatomy(workdir, 32)
    knowable, rest = parts["next colour knowable"], parts["not knowable"]
    assert knowable["fraction_of_steps"] + rest["fraction_of_steps"] == pytest.approx(1.0)
    assert 0.0 < knowable["fraction_of_steps"] < 1.0
    assert knowable["bayes_nll"] == pytest.approx(knowable["next_colour_nll"], abs=0.04)
    off = parts["knowable steps, mass off the shortest moves"]
    assert sum(off.values()) == pytest.approx(1.0 - knowable["model_mass_on_shortest"], abs=1e-3)
    assert sum(parts["excess_nll_over_bayes"].values()) == pytest.approx(
        parts["all"]["model_nll"] - parts["all"]["bayes_nll"], abs=1e-4)

    resume.check_kills_in_every_phase_then_rerun_equal(workdir, tmp_path)
    resume.check_another_seed_differs(workdir, tmp_path)

    # Another α and --steer_forget on the finished run: the base and probes are reused; the steer
    # phase reruns with its controllers trained and scored forgetting, the metacontroller runs
    # again and the RL phase, which reads its codes, is set aside.
    other = launch(*TINY, "--alpha=0.1", "--steer_forget=both",
                   "--phases=data,pretrain,probe,steer,metacontroller", f"--workdir={workdir}")
    assert other.returncode == 0, other.stderr
    assert "meta.alpha: '0.3' there, '0.1' now" in other.stdout
    assert "analysis.steer_forget: 'none' there, 'both' now" in other.stdout
    assert other.stdout.count("finished earlier; skipping") == 3
    assert "[metacontroller] starting" in other.stdout
    assert os.path.exists(os.path.join(workdir, "replaced", "internal_rl", "done.json"))
    results = json.load(open(os.path.join(workdir, "results.json")))
    assert "internal_rl" not in results and results["pretrain"] == first_results["pretrain"]
    phases = json.load(open(os.path.join(workdir, "phases.json")))
    assert phases["metacontroller"]["meta"]["alpha"] == "0.1"
    assert phases["pretrain"]["meta"]["alpha"] == "0.3"
    assert results["steer"]["forget"] == "both"
    assert results["steer"]["heldout_unsteered_action_nll"] != \
        first_results["steer"]["heldout_unsteered_action_nll"], "scored without the history"


def test_nan_loss_stops_naming_phase_and_update_and_damaged_data_gives_one_line(tmp_path):
    workdir = str(tmp_path / "run")
    args = (*TINY, "--phases=data,pretrain", "--pretrain_lr=1e30", f"--workdir={workdir}")
    result = launch(*args)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
    assert last.startswith("error: [pretrain]") and "NaN/Inf at update" in last, last
    assert "--on_nonfinite=skip" in last and "JAX_DEBUG_NANS" in last
    checkpoints = os.path.join(workdir, "pretrain", "checkpoints")
    assert not os.path.exists(checkpoints) or not [
        d for d in os.listdir(checkpoints) if d.isdigit()], "no NaN checkpoint is written"

    with open(os.path.join(workdir, "data", "train.npz"), "r+b") as f:
        f.truncate(1000)
    result = launch(*args)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
    assert last.startswith("error: [pretrain] dataset") and "unreadable" in last, last
    assert "--phases=data --force" in last
