"""launch.report on stored artefacts only (no training), and the metrics writer's optional
TensorBoard output."""
import json
import os
import shutil
import sys

import pytest

from experiments import configs
from hrl_internal.utils.metrics import MetricsWriter
from launch import report, rundir
from tests.launch.test_sweep import FakeRunner, write_run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The cpu main job's results.json: every figure a full run stores.
MAIN_JOB = os.path.join(ROOT, "experiments", "results", "gridworld_cpu_main.json")


@pytest.fixture
def run_dir(tmp_path):
    """A finished run as the launcher leaves it, less checkpoints and data."""
    path = tmp_path / "run"
    write_run(str(path), json.load(open(MAIN_JOB)))
    rundir.write_json(str(path / "config.json"), configs.to_dict(configs.preset("cpu")))
    pretrain = MetricsWriter(str(path / "pretrain" / "metrics.jsonl"))
    rl = MetricsWriter(str(path / "internal_rl" / "internal_rl" / "metrics.jsonl"))
    os.makedirs(path / "internal_rl" / "internal_rl")
    for step in range(1, 4):
        pretrain.write(step * 50, {"loss": 2.0 / step, "heldout_action_nll": 2.1 / step,
                                   "action_accuracy": 0.2 * step,
                                   "heldout_action_accuracy": 0.19 * step})
        rl.write(step, {"episodes": 400.0, "env_steps": 3000.0, "success_seed0": 0.001 * step,
                        "success_seed1": 0.0, "success_seed2": 0.002})
    return path


def test_report_prints_the_table_and_regenerates_plots_from_stored_data(run_dir, capsys):
    assert report.main(["launch.report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    stored = json.load(open(MAIN_JOB))
    for phase, name in (("metacontroller", "switch_f1"), ("pretrain", "heldout_action_accuracy")):
        row = next(line for line in out.splitlines() if f"{phase}.{name} " in line)
        assert f"{stored[phase][name]:.4g}" in row, row  # the stored figure, on its own row
    # A stored file's free-text entry, as one row.
    assert "notes" in out and stored["notes"].split(",")[0] in out
    made = out.split("plots regenerated")[1].split("not regenerated")[0]
    for name in ("pretrain_curves.png", "probe_accuracy_by_layer.png", "steer_success_by_layer.png",
                 "rate_distortion.png", "latent_codes.png", "internal_rl_success.png"):
        assert name in made, name
        assert os.path.getsize(run_dir / "plots" / name) > 0, name
    missing = out.split("not regenerated:")[1]
    assert "data_episodes.png: needs data/train.npz" in missing  # none stored here
    assert "beta_<variant>_a<alpha>.png" in missing and "--phases=metacontroller --force" in missing


def test_report_without_metrics_files_uses_what_results_json_holds(run_dir, capsys):
    shutil.rmtree(run_dir / "pretrain")
    shutil.rmtree(run_dir / "internal_rl")
    assert report.main(["launch.report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "pretrain_curves.png: needs pretrain/metrics.jsonl" in out
    assert os.path.getsize(run_dir / "plots" / "internal_rl_success.png") > 0  # results' curves


@pytest.mark.parametrize("make,args,expected", [
    (None, ["{tmp}/nothing"], "no such directory"),
    ("dir", ["{tmp}/empty"], "holds no results.json"),
    ("empty_results", ["{tmp}/empty"], "results.json is empty"),
    (None, [], "usage: python -m launch.report DIR"),
])
def test_nothing_to_report_is_one_line_exit_2(tmp_path, capsys, make, args, expected):
    if make:
        os.makedirs(tmp_path / "empty")
    if make == "empty_results":
        (tmp_path / "empty" / "results.json").write_text("{}")
    assert report.main(["launch.report", *[a.format(tmp=tmp_path) for a in args]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err


def test_report_on_a_sweep_directory_summarises_it(tmp_path, capsys):
    from launch import sweep
    workdir = tmp_path / "sweep"
    args = ["launch.sweep", "--preset=smoke", "--sweep=seed=0,1", f"--workdir={workdir}"]
    assert sweep.main(args, runner=FakeRunner()) == 0
    os.remove(workdir / "summary.json")
    capsys.readouterr()
    assert report.main(["launch.report", str(workdir)]) == 0
    assert "| metacontroller.switch_f1 | 0.55 [0.525, 0.575] (2) |" in capsys.readouterr().out
    assert os.path.exists(workdir / "summary.json")


def test_metrics_writer_writes_tensorboard_events_when_tensorboardx_is_installed(tmp_path):
    pytest.importorskip("tensorboardX")
    writer = MetricsWriter(str(tmp_path / "metrics.jsonl"))
    assert not list(tmp_path.glob("events.*"))  # nothing before the first write
    writer.write(1, {"loss": 0.5})
    writer.write(2, {"loss": 0.25})
    del writer  # closes the event file
    events = list(tmp_path.glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    assert [r["loss"] for r in MetricsWriter(str(tmp_path / "metrics.jsonl")).read()] == [0.5, 0.25]


def test_metrics_writer_without_tensorboardx_writes_json_lines_only(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails as if not installed
    writer = MetricsWriter(str(tmp_path / "metrics.jsonl"))
    writer.write(3, {"loss": 1.0})
    assert [r["step"] for r in writer.read()] == [3]
    assert os.listdir(tmp_path) == ["metrics.jsonl"]
