import collections
import os

import pytest

from experiments import configs
from launch import rundir


def test_a_full_disk_is_refused_before_any_compute(tmp_path, monkeypatch):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 5, 5))
    with pytest.raises(configs.ConfigError, match=r"--workdir: .* MiB free; at least 200 MiB"):
        rundir.prepare(str(tmp_path / "run"), configs.preset("smoke"), "smoke")
    assert not os.path.exists(tmp_path / "run" / "config.json")


def _finished_run(path: str, config: configs.Config) -> rundir.RunDir:
    """A run directory as the launcher leaves it: every phase done, its config and figures."""
    run = rundir.prepare(path, config, "smoke")
    for phase in rundir.PHASE_READS:
        run.record_config(phase, config)
        run.merge_results(phase, {"x": phase})
        run.mark_done(phase, {"x": phase})
    return run


def test_a_changed_config_sets_aside_exactly_the_phases_that_read_it(tmp_path, capsys):
    path = str(tmp_path / "run")
    smoke = configs.preset("smoke")
    run = _finished_run(path, smoke)
    rundir.prepare(path, configs.replace_fields(smoke, alpha="0.1"), "smoke")
    assert "meta.alpha: '0.3' there, '0.1' now" in capsys.readouterr().out
    kept = ("data", "pretrain", "probe", "steer")
    assert [p for p in rundir.PHASE_READS if run.is_done(p)] == list(kept)
    assert sorted(os.listdir(os.path.join(path, "replaced"))) == ["internal_rl", "metacontroller"]
    assert os.path.exists(os.path.join(path, "replaced", "metacontroller", "done.json"))
    assert sorted(run.results()) == sorted(kept)
    assert sorted(rundir.read_json(os.path.join(path, "phases.json"))) == sorted(kept)
    assert rundir.read_json(os.path.join(path, "config.json"))["meta"]["alpha"] == "0.1"
    # An RL field the latent-code check reads re-runs the metacontroller phase; one it does not,
    # only internal RL; a probe field, the probe and everything after it.
    for change, first in ((dict(rl_updates=3), "internal_rl"),
                          (dict(rl_max_steps=40), "metacontroller"),
                          (dict(probe_steps=7), "probe"), (dict(seed=4), "data")):
        _finished_run(path, smoke)
        rundir.prepare(path, configs.replace_fields(smoke, **change), "smoke")
        order = list(rundir.PHASE_READS)
        assert [p for p in order if not run.is_done(p)] == order[order.index(first):], change


def test_every_config_field_is_read_by_some_phase():
    config = configs.to_dict(configs.preset("smoke"))
    covered = set(rundir.phase_inputs(config, "internal_rl", list(rundir.PHASE_READS)))
    leaves = set(rundir.flatten(config))
    assert leaves - covered == {"on_nonfinite"}


def test_a_run_written_before_a_field_existed_stays_usable_while_the_field_is_default(tmp_path):
    path = str(tmp_path / "run")
    run = _finished_run(path, configs.preset("smoke"))
    os.remove(os.path.join(path, "phases.json"))  # as written before phases.json existed
    stored = rundir.read_json(os.path.join(path, "config.json"))
    del stored["meta"]["gate_temperature"]  # as written by a version without the option
    rundir.write_json(os.path.join(path, "config.json"), stored)
    rundir.prepare(path, configs.preset("smoke"), "smoke")  # the default: the same run
    assert all(run.is_done(p) for p in rundir.PHASE_READS)
    assert rundir.read_json(os.path.join(path, "config.json"))["meta"]["gate_temperature"] == 0.0
    rundir.write_json(os.path.join(path, "config.json"), stored)
    rundir.prepare(path, configs.replace_fields(configs.preset("smoke"), gate_temperature=0.5),
                   "smoke")
    assert [p for p in rundir.PHASE_READS if not run.is_done(p)] == ["metacontroller",
                                                                    "internal_rl"]


def test_json_writes_are_atomic(tmp_path):
    path = str(tmp_path / "x.json")
    rundir.write_json(path, {"a": 1})
    assert rundir.read_json(path) == {"a": 1} and os.listdir(tmp_path) == ["x.json"]
