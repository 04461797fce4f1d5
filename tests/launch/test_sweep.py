"""Sweeps: grid expansion, checks before anything runs, skipping finished points, aggregation.

Points run through a fake runner that writes what a finished launch.main run leaves behind
(results.json and each phase's done.json), so no training happens here.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from launch import sweep
from launch.phases import PHASES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fake_results(seed: int, alpha: float) -> dict:
    """A results.json shaped like a real run's, with figures that depend on seed and α."""
    return {
        "data": {"train_episodes": 64, "data_seconds": 1.5 + seed},
        "probe": {"accuracy_by_layer": [0.25 + 0.01 * seed, 0.3 + 0.01 * seed, 0.5]},
        "steer": {"layers": [1, 2], "posttrain_success_by_layer": [0.1 * seed, 0.2]},
        "metacontroller": {
            "variant": "standard", "switch_f1": 0.5 + 0.1 * seed,
            "sweep": [{"variant": "standard", "alpha": alpha, "nll": 1.0 - alpha + 0.01 * seed,
                       "kl": alpha + 0.02 * seed, "switch_f1": 0.6, "switches_per_episode": 2.0}]},
        "internal_rl": {
            "task": "0-1-2-3", "seeds": 2,
            "internal_rl.success_rate": 0.1 * seed,
            "internal_rl.success_rate_per_seed": [0.1 * seed, 0.1 * seed + 0.05],
            "internal_rl.curve": [[100.0 * (u + 1), 0.01 * u * (seed + 1)] for u in range(6)]},
    }


def write_run(path: str, results: dict, phases=PHASES) -> None:
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "results.json"), "w") as f:
        json.dump(results, f)
    for phase in phases:
        os.makedirs(os.path.join(path, phase), exist_ok=True)
        with open(os.path.join(path, phase, "done.json"), "w") as f:
            f.write("{}")


class FakeRunner:
    """Records each point's command line and writes a finished run for it (or fails it)."""

    def __init__(self, fail: tuple[str, ...] = ()):
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, argv, prefix):
        self.calls.append(argv)
        flags = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
        if any(f"{k}={v}" in self.fail for k, v in flags.items()):
            return 1
        seed, alpha = int(flags["seed"]), float(flags.get("alpha", 0.3))
        write_run(flags["workdir"], fake_results(seed, alpha))
        return 0


def run_main(args, runner=None):
    return sweep.main(["launch.sweep", "--preset=smoke", *args], runner=runner or FakeRunner())


@pytest.mark.parametrize("args,expected", [
    (["--sweep=alpah=0.1,0.3"], ["--sweep", "'alpah'", "did you mean alpha", "allowed"]),
    (["--sweep=seed=0,x"], ["--sweep", "seed", "int", "'x'"]),
    (["--sweep=seed=0,1", "--sweep=alpha=0.1,-1"], ["point alpha=-1,seed=0", "--alpha", ">= 0"]),
    (["--sweep=rl_methods=internal_rl,options"], ["point rl_methods=options", "--rl_methods",
                                                  "raw_action_rl"]),
    (["--sweep=egocentric=maybe"], ["egocentric", "true or false"]),
    (["--sweep=seed=1,1"], ["seed", "repeats"]),
    (["--sweep=seed=0,1", "--seed=3"], ["seed", "also given as --seed"]),
    (["--sweep=seed"], ["FIELD=v1,v2"]),
    (["--sweep=seed=0", "--phases=data,dance"], ["--phases", "'dance'", "allowed: data"]),
    (["--sweep=seed=0", "--grid_size=0"], ["--grid_size", "positive"]),
])
def test_bad_sweep_is_one_line_exit_2_before_anything_runs(tmp_path, capsys, args, expected):
    runner = FakeRunner()
    code = run_main([*args, f"--workdir={tmp_path / 'sweep'}"], runner)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    for part in expected:
        assert part in err[0], err[0]
    assert runner.calls == [] and not os.path.exists(tmp_path / "sweep")


def test_grid_is_the_product_in_order_with_safe_names():
    fields = {"alpha": "0.3", "seed": 0, "egocentric": True, "rl_task": "0-1-2-3"}
    axes = sweep.parse_axes(["alpha=0.1,0.3", "egocentric=False,true", "rl_task=0-1-2-3,a/b"],
                            fields)
    assert axes["egocentric"] == ["false", "true"]  # bools written the way absl reads them
    points = sweep.expand(axes)
    assert len(points) == 8
    assert points[0].values == {"alpha": "0.1", "egocentric": "false", "rl_task": "0-1-2-3"}
    assert points[1].name == "alpha=0.1,egocentric=false,rl_task=a_b"  # last axis fastest
    assert points[-1].name == "alpha=0.3,egocentric=true,rl_task=a_b"
    # Seeds outermost, so early points span every setting; ``seed`` last in the names.
    seeded = sweep.expand({"seed": ["0", "1"], "alpha": ["0.1", "0.3"]})
    assert [p.name for p in seeded] == ["alpha=0.1,seed=0", "alpha=0.3,seed=0",
                                        "alpha=0.1,seed=1", "alpha=0.3,seed=1"]


def test_points_run_with_the_flags_passed_on_and_finished_ones_are_skipped(tmp_path, capsys):
    workdir = tmp_path / "sweep"
    write_run(str(workdir / "alpha=0.1,seed=0"), fake_results(0, 0.1))  # finished earlier
    write_run(str(workdir / "alpha=0.1,seed=1"), fake_results(1, 0.1), phases=["data"])  # not
    runner = FakeRunner(fail=("seed=2",))
    args = ["--sweep=alpha=0.1,0.3", "--sweep=seed=0,1,2", "--rl_seeds=3", "--noegocentric",
            f"--workdir={workdir}"]
    assert run_main(args, runner) == 1  # a point failed: reported, the others still ran
    names = [os.path.basename(c[-1].split("=", 1)[1]) for c in runner.calls]
    assert names == ["alpha=0.3,seed=0", "alpha=0.1,seed=1", "alpha=0.3,seed=1",
                     "alpha=0.1,seed=2", "alpha=0.3,seed=2"]  # seed by seed
    argv = runner.calls[0]
    assert argv[:3] == [sys.executable, "-m", "launch.main"]
    for flag in ("--preset=smoke", "--rl_seeds=3", "--noegocentric", "--alpha=0.3", "--seed=0"):
        assert flag in argv, argv
    assert not any(a.startswith("--sweep") for a in argv)
    out, err = capsys.readouterr()
    assert "[sweep 1/6 alpha=0.1,seed=0] finished earlier; skipping" in out
    assert "[sweep] 6/6 points (100%)" in out and "ETA" in out
    assert "2 of 6 points failed: alpha=0.1,seed=2, alpha=0.3,seed=2" in err
    summary = json.load(open(workdir / "summary.json"))
    assert [g["points"] for g in summary["groups"]] == [["alpha=0.1,seed=0", "alpha=0.1,seed=1"],
                                                        ["alpha=0.3,seed=0", "alpha=0.3,seed=1"]]

    again = FakeRunner()  # a rerun retries the failed points only
    assert run_main(args, again) == 0
    assert [c[-1] for c in again.calls] == [f"--workdir={workdir / 'alpha=0.1,seed=2'}",
                                            f"--workdir={workdir / 'alpha=0.3,seed=2'}"]


def test_summary_quantiles_per_group_pooled_seeds_and_plots(tmp_path, capsys):
    workdir = tmp_path / "sweep"
    args = ["--sweep=alpha=0.1,0.3", "--sweep=seed=0,1,2", f"--workdir={workdir}"]
    assert run_main(args) == 0
    summary = json.load(open(workdir / "summary.json"))
    assert summary["grouped_by"] == ["alpha"]
    groups = {g["name"]: g["figures"] for g in summary["groups"]}
    assert sorted(groups) == ["alpha=0.1", "alpha=0.3"]
    f1 = groups["alpha=0.1"]["metacontroller.switch_f1"]  # seeds give 0.5, 0.6, 0.7
    assert f1["median"] == pytest.approx(0.6) and f1["n"] == 3
    assert f1["q25"] == pytest.approx(0.55) and f1["q75"] == pytest.approx(0.65)
    by_layer = groups["alpha=0.1"]["probe.accuracy_by_layer"]  # element-wise over seeds
    np.testing.assert_allclose(by_layer["median"], [0.26, 0.31, 0.5])
    np.testing.assert_allclose(by_layer["q25"], [0.255, 0.305, 0.5])
    pooled = groups["alpha=0.1"]["internal_rl.internal_rl.success_rate_per_seed"]
    assert pooled["pooled"] and pooled["n"] == 6  # 3 points x 2 RL seeds
    assert pooled["median"] == pytest.approx(np.median([0, .05, .1, .15, .2, .25]))
    assert np.shape(groups["alpha=0.1"]["internal_rl.internal_rl.curve"]["median"]) == (6, 2)
    assert "data.data_seconds" in groups["alpha=0.1"]  # timings kept in JSON ...
    assert "metacontroller.variant" not in groups["alpha=0.1"]  # ... strings left out

    rows = {(r["alpha"], r["variant"]): r for r in summary["rate_distortion"]}
    assert set(rows) == {(0.1, "standard"), (0.3, "standard")}
    assert rows[(0.3, "standard")]["kl"]["median"] == pytest.approx(0.32)
    curves = summary["rl_curves"]  # one group per α: the labels say which
    assert set(curves) == {"internal_rl (alpha=0.1)", "internal_rl (alpha=0.3)"}
    np.testing.assert_allclose(curves["internal_rl (alpha=0.1)"]["success"][-1], 0.1)
    for name in ("rate_distortion.png", "internal_rl_success.png", "probe_accuracy_by_layer.png",
                 "steer_success_by_layer.png"):
        assert os.path.getsize(workdir / "plots" / name) > 0, name

    md = open(workdir / "summary.md").read()
    assert "| figure | alpha=0.1 | alpha=0.3 |" in md
    assert "| metacontroller.switch_f1 | 0.6 [0.55, 0.65] (3) |" in md
    assert "| probe.accuracy_by_layer | [0.26, 0.31, 0.5] (3) |" in md
    assert "data_seconds" not in md

    # Re-summarising alone reads what is on disk, runs nothing, and sees a new point's results.
    write_run(str(workdir / "alpha=0.1,seed=2"), fake_results(5, 0.1))
    for name in ("summary.json", "summary.md", "plots/rate_distortion.png"):
        os.remove(workdir / name)
    runner = FakeRunner()
    assert sweep.main(["launch.sweep", f"--workdir={workdir}", "--summarize_only"], runner) == 0
    assert runner.calls == [] and os.path.exists(workdir / "plots" / "rate_distortion.png")
    redone = json.load(open(workdir / "summary.json"))
    f1 = redone["groups"][0]["figures"]["metacontroller.switch_f1"]  # seeds 0, 1 and now 5
    assert f1["median"] == pytest.approx(0.6) and f1["q75"] == pytest.approx(0.8)
    assert "| metacontroller.switch_f1 |" in capsys.readouterr().out


def test_seed_only_sweep_is_one_group_and_needs_no_alpha_plot(tmp_path):
    workdir = tmp_path / "sweep"
    assert run_main(["--sweep=seed=0,1", f"--workdir={workdir}"]) == 0
    summary = json.load(open(workdir / "summary.json"))
    assert [g["name"] for g in summary["groups"]] == ["all"]
    assert not os.path.exists(workdir / "plots" / "rate_distortion.png")  # one α only
    assert set(summary["rl_curves"]) == {"internal_rl"}


def test_command_line_bad_input_exits_2_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "launch.sweep", "--preset=smoke", "--sweep=alpah=0.1",
         f"--workdir={tmp_path / 'sweep'}"], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "did you mean alpha" in result.stderr, result.stderr
