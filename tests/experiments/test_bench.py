import json
import math

import pytest

from experiments import bench

# The smallest sizes: the test is bound by compiling the rows' programs (a cold cache takes about
# 30 s here). Left out: the ant rows (compiling MJX takes tens of seconds; they share
# ``bench_env.env_rows`` with the gridworld's), raw-action RL, the RL updates, the metacontroller
# and the cached rollouts (4-15 s of compiling each; they are built from the same ``measure`` and
# ``row``, raw-action RL from the same ``bench_rl.rollout_rows`` as internal RL).
SMOKE = ["--preset=smoke", "--rows=env,matmul,pretrain,internal_rl,ratio,main_job",
         "--matmul_sizes=32,64", "--env_batches=1,8", "--env_steps=4", "--dataset_episodes=32", "--data_episodes=32",
         "--train_batch=2", "--train_steps=1", "--rollout_batches=", "--rl_slots=8",
         "--rl_update_slots=", "--start_ticks=2", "--ratio_batch=8", "--ratio_steps=2",
         "--repeats=1"]


# A launcher results file: per-phase wall seconds and compile seconds.
MAIN_RESULTS = {"notes": "made up", "data": {"data_seconds": 30.0, "compile_seconds": 6.0},
                "pretrain": {"pretrain_seconds": 70.0, "compile_seconds": 14.0, "loss": 0.5}}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    (tmp / "main.json").write_text(json.dumps(MAIN_RESULTS))
    out = tmp / "bench.json"
    assert bench.main(["bench", *SMOKE, f"--main_results={tmp / 'main.json'}", f"--out={out}"]) == 0
    with open(out) as f:
        return json.load(f)


def test_report_names_the_device_memory_command_and_targets(report):
    for key in ("device", "cpu_count", "jax_version", "command", "settings", "peak_host_mib",
                "peak_device_bytes", "recompiles_after_warmup", "targets", "rows"):
        assert key in report, key
    assert report["peak_host_mib"] > 0
    assert "--preset=smoke" in report["command"]
    names = {r["row"] for r in report["rows"]}
    assert names == {"env_step", "env_reset", "expert_dataset", "matmul_ceiling", "pretrain",
                     "internal_rl_rollout", "rl_env_step", "cached_step", "o1_ratio", "main_job"}
    assert {r["batch"] for r in report["rows"] if r["row"] == "env_step"} == {1, 8}
    for t in report["targets"]:
        assert set(t) >= {"name", "measured", "threshold", "met"}
        assert t["met"] in (True, False, None)


def test_measured_rows_are_positive_finite_rates_with_no_recompilation(report):
    measured = [r for r in report["rows"] if r["row"] not in ("o1_ratio", "main_job")]
    for r in measured:
        assert set(r) >= {"row", "batch", "per_s", "unit", "compile_s"}, r["row"]
        assert r["per_s"] > 0 and math.isfinite(r["per_s"]), r
        assert r["compile_s"] >= 0 and r["recompiles_after_warmup"] == 0, r
    assert report["recompiles_after_warmup"] == 0
    pretrain = next(r for r in report["rows"] if r["row"] == "pretrain")
    assert pretrain["flops_per_step"] > 0 and pretrain["achieved_tflops"] > 0
    # On a CPU without --peak_tflops the peak is the best measured matmul.
    ceiling = max(r["per_s"] for r in report["rows"] if r["row"] == "matmul_ceiling")
    assert pretrain["peak_tflops"] == pytest.approx(ceiling / 1e12)
    assert pretrain["mfu"] == pytest.approx(pretrain["achieved_tflops"] * 1e12 / ceiling)
    assert "matmul ceiling" in pretrain["note"]


def test_ratio_and_main_job_rows_are_computed(report):
    rows = {r["row"]: r for r in report["rows"]}
    ratio = rows["o1_ratio"]
    assert ratio["ratio"] == pytest.approx(ratio["predicted_per_s"] / ratio["per_s"])
    assert ratio["predicted_per_s"] == pytest.approx(8 / (ratio["env_step_s"]
                                                          + ratio["model_step_s"]))
    assert ratio["late_over_early"] > 0 and "predicted" in ratio["note"]
    # (c) reuses the internal-RL row of the same batch instead of measuring it again.
    assert len([r for r in report["rows"] if r["row"] == "internal_rl_rollout"]) == 1
    main = rows["main_job"]
    assert (main["compile_s"], main["wall_s"]) == (20.0, 100.0)
    assert main["compile_fraction"] == pytest.approx(0.2)
    met = {t["name"]: t["met"] for t in report["targets"]}
    assert met["no recompilation after warm-up (programs compiled during the timed calls of "
               "every row)"] is True
    assert met["main job compile seconds under 25% of its wall seconds"] is True
    assert met["cpu preset main job end to end under 2 minutes on a GPU"] is None


@pytest.mark.parametrize("args, flag, allowed", [
    (["--rows=env,warp"], "rows", "env, ant, matmul, pretrain"),
    (["--env_batches=1,0"], "env_batches", "positive integers"),
    (["--rl_slots=8,x"], "rl_slots", "positive integers"),
    (["--repeats=0"], "repeats", "positive"),
    (["--preset=huge"], "preset", "smoke, cpu, paper"),
    (["--meta_sizes=paper,big"], "meta_sizes", "paper, preset"),
    (["--ratio_steps=51"], "ratio_steps", "max_steps/2"),
    (["--rows=main_job", "--main_results=/no/such.json"], "main_results", "no such file"),
    (["--no_such_flag=1"], "no_such_flag", "Unknown"),
])
def test_bad_flags_are_named_before_anything_is_measured(monkeypatch, capsys, args, flag, allowed):
    monkeypatch.setattr(bench, "run", lambda settings: pytest.fail("measured despite a bad flag"))
    assert bench.main(["bench", *args]) == 2
    err = capsys.readouterr().err
    assert f"--{flag}:" in err and allowed in err


def test_default_rows_leave_out_a_missing_main_job_file():
    settings = bench.parse(["bench", "--main_results=/no/such.json"])
    assert settings.rows == tuple(r for r in bench.ROWS if r != "main_job")
    assert settings.rl_slots == (1, 256) and settings.ant_batches == (1, 128, 1024)  # a CPU
