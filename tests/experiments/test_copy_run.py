import json
import os

import pytest

from experiments import copy_run


def _fake_run(root):
    for phase in ("data", "pretrain", "steer", "internal_rl"):
        os.makedirs(root / phase)
        (root / phase / "done.json").write_text("{}")
    os.makedirs(root / "metacontroller")
    os.makedirs(root / "compile_cache")
    (root / "compile_cache" / "jit_step-0123").write_text("program")
    (root / "config.json").write_text(json.dumps({"rl": {"rl_updates": 10, "rl_lr": 1e-3,
                                                         "rl_methods": "internal_rl"},
                                                  "meta": {"meta_steps": 700}}))
    (root / "results.json").write_text(json.dumps({"pretrain": {"a": 1}, "metacontroller": {"c": 3},
                                                   "internal_rl": {"b": 2}}))
    (root / "run.json").write_text("{}")


def test_copies_the_phases_before_rl_and_sets_the_rl_fields_with_their_types(tmp_path):
    _fake_run(tmp_path / "src")
    copy_run.copy_run(str(tmp_path / "src"), str(tmp_path / "dst"),
                      {"rl_updates": "60", "rl_lr": "3e-4", "rl_methods": "subgoal_controllers",
                       "policy_log_std": "-1"})  # the last: a field the stored run predates
    dst = tmp_path / "dst"
    assert sorted(p.name for p in dst.iterdir() if p.is_dir()) == [
        "compile_cache", "data", "metacontroller", "pretrain", "steer"]
    assert (dst / "compile_cache" / "jit_step-0123").read_text() == "program"
    rl = json.loads((dst / "config.json").read_text())["rl"]
    assert rl == {"rl_updates": 60, "rl_lr": 3e-4, "rl_methods": "subgoal_controllers",
                  "policy_log_std": -1.0}
    assert json.loads((dst / "results.json").read_text()) == {"pretrain": {"a": 1},
                                                             "metacontroller": {"c": 3}}


def test_a_metacontroller_field_reruns_the_metacontroller_and_rl(tmp_path):
    _fake_run(tmp_path / "src")
    copy_run.copy_run(str(tmp_path / "src"), str(tmp_path / "dst"),
                      {"meta.meta_steps": "2100", "meta.sequence_embedding": "episode",
                       "rl.rl_updates": "60"})
    dst = tmp_path / "dst"
    assert sorted(p.name for p in dst.iterdir() if p.is_dir()) == [
        "compile_cache", "data", "pretrain", "steer"]
    config = json.loads((dst / "config.json").read_text())
    assert config["meta"] == {"meta_steps": 2100, "sequence_embedding": "episode"}
    assert config["rl"]["rl_updates"] == 60
    assert json.loads((dst / "results.json").read_text()) == {"pretrain": {"a": 1}}
    # A bool field reads true/false (bool("false") would be True) and refuses anything else.
    copy_run.copy_run(str(tmp_path / "src"), str(tmp_path / "off"),
                      {"meta.gate_straight_through": "false", "meta.meta_input_norm": "true"})
    config = json.loads((tmp_path / "off" / "config.json").read_text())
    assert (config["meta"]["gate_straight_through"], config["meta"]["meta_input_norm"]) == (
        False, True)
    with pytest.raises(SystemExit, match="gate_straight_through must be true or false"):
        copy_run.copy_run(str(tmp_path / "src"), str(tmp_path / "bad"),
                          {"meta.gate_straight_through": "yes"})


def test_refuses_an_unknown_field_and_an_existing_destination(tmp_path):
    _fake_run(tmp_path / "src")
    with pytest.raises(SystemExit, match="rl_foo not among the rl fields"):
        copy_run.copy_run(str(tmp_path / "src"), str(tmp_path / "dst"), {"rl_foo": "1"})
    with pytest.raises(SystemExit, match="rl_updates not among the meta fields"):
        copy_run.copy_run(str(tmp_path / "src"), str(tmp_path / "dst"), {"meta.rl_updates": "1"})
    with pytest.raises(SystemExit, match="section must be one of"):
        copy_run.copy_run(str(tmp_path / "src"), str(tmp_path / "dst"), {"model.d_model": "1"})
    assert not (tmp_path / "dst").exists()  # refused before anything is written
    with pytest.raises(SystemExit, match="exists"):
        copy_run.copy_run(str(tmp_path / "src"), str(tmp_path / "src"), {})
