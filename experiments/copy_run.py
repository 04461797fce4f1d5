"""Reuse a finished run's phases with other metacontroller or RL settings.

A run directory refuses a rerun with changed flags, so trying another RL setting (or another
metacontroller) on the same base model and steering controllers means a new directory holding
copies of them:

    python -m experiments.copy_run SRC DST rl_updates=60 rl_methods=subgoal_controllers
    python -m launch.main --preset=cpu --workdir=DST --rl_updates=60 --rl_methods=subgoal_controllers

    python -m experiments.copy_run SRC DST meta.meta_steps=2100 meta.sequence_embedding=episode
    python -m launch.main --preset=cpu --workdir=DST --meta_steps=2100 --sequence_embedding=episode

A field is ``rl.NAME`` (or a bare ``NAME``: a field of ``configs.RLConfig``) or ``meta.NAME`` (a field
of ``configs.MetaConfig``), set with that field's type. Every phase directory before the first
changed section is copied (``rl``: all but ``internal_rl``; ``meta``: all but ``metacontroller``
and ``internal_rl``), with the run's compiled programs (``compile_cache``), and the stored results
lose the entries of the phases left out, so the launcher skips the finished phases and runs the
others afresh.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys

from experiments import configs

# compile_cache: the copy loads the programs its phases share with the original's.
KEEP = ("data", "pretrain", "probe", "steer", "metacontroller", "plots", "compile_cache")
FILES = ("config.json", "results.json", "run.json")
# The config section each re-run phase depends on, and the phases it makes run again.
SECTIONS = {"meta": (configs.MetaConfig, ("metacontroller", "internal_rl")),
            "rl": (configs.RLConfig, ("internal_rl",))}


def _split(name: str) -> tuple[str, str]:
    section, _, field = name.rpartition(".")
    section = section or "rl"
    if section not in SECTIONS:
        raise SystemExit(f"copy_run: {name}: the section must be one of {', '.join(SECTIONS)}")
    return section, field


def _typed(default: object, value: str, field: str) -> object:
    """``value`` as the type of the field's ``default`` (a bool from true/false, not bool(str))."""
    if isinstance(default, bool):
        if value.lower() not in ("true", "false", "1", "0"):
            raise SystemExit(f"copy_run: {field} must be true or false, got {value!r}")
        return value.lower() in ("true", "1")
    return type(default)(value)


def copy_run(src: str, dst: str, fields: dict[str, str]) -> None:
    config = json.load(open(os.path.join(src, "config.json")))
    typed, rerun = [], set()
    for name, value in fields.items():
        section, field = _split(name)
        cls, phases = SECTIONS[section]
        # Fields added after the run was made are set from their current defaults' types.
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        if field not in defaults:
            raise SystemExit(f"copy_run: {field} not among the {section} fields "
                             f"({', '.join(sorted(defaults))})")
        typed.append((section, field, _typed(defaults[field], value, field)))
        rerun.update(phases)
    rerun.add("internal_rl")
    if os.path.exists(dst):
        raise SystemExit(f"copy_run: {dst} exists; choose a new directory")
    os.makedirs(dst)
    for name in KEEP:
        if name not in rerun and os.path.isdir(os.path.join(src, name)):
            shutil.copytree(os.path.join(src, name), os.path.join(dst, name))
    for name in FILES:
        shutil.copy(os.path.join(src, name), dst)
    for section, field, value in typed:
        config[section][field] = value
    json.dump(config, open(os.path.join(dst, "config.json"), "w"), indent=2, sort_keys=True)
    results = json.load(open(os.path.join(dst, "results.json")))
    for phase in rerun:
        results.pop(phase, None)
    json.dump(results, open(os.path.join(dst, "results.json"), "w"), indent=2, sort_keys=True)


if __name__ == "__main__":
    if len(sys.argv) < 3 or not all("=" in a for a in sys.argv[3:]):
        raise SystemExit("usage: python -m experiments.copy_run SRC DST [[rl.|meta.]field=value ...]")
    copy_run(sys.argv[1], sys.argv[2], dict(a.split("=", 1) for a in sys.argv[3:]))
