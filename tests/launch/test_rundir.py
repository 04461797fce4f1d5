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


def test_a_workdir_holding_another_config_is_refused_naming_the_difference(tmp_path):
    path = str(tmp_path / "run")
    rundir.prepare(path, configs.preset("smoke"), "smoke")
    with pytest.raises(configs.ConfigError, match=r"--workdir: .*seed: 0 there, 3 now"):
        rundir.prepare(path, configs.replace_fields(configs.preset("smoke"), seed=3), "smoke")


def test_a_run_written_before_a_field_existed_stays_usable_while_the_field_is_default(tmp_path):
    path = str(tmp_path / "run")
    rundir.prepare(path, configs.preset("smoke"), "smoke")
    stored = rundir.read_json(os.path.join(path, "config.json"))
    del stored["meta"]["gate_temperature"]  # as written by a version without the option
    rundir.write_json(os.path.join(path, "config.json"), stored)
    rundir.prepare(path, configs.preset("smoke"), "smoke")  # the default: the same run
    assert rundir.read_json(os.path.join(path, "config.json"))["meta"]["gate_temperature"] == 0.0
    rundir.write_json(os.path.join(path, "config.json"), stored)
    with pytest.raises(configs.ConfigError, match=r"gate_temperature: 0.0 there, 0.5 now"):
        rundir.prepare(path, configs.replace_fields(configs.preset("smoke"), gate_temperature=0.5),
                       "smoke")


def test_json_writes_are_atomic(tmp_path):
    path = str(tmp_path / "x.json")
    rundir.write_json(path, {"a": 1})
    assert rundir.read_json(path) == {"a": 1} and os.listdir(tmp_path) == ["x.json"]
