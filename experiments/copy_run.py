"""Reuse a finished run's phases before ``internal_rl`` with other RL settings.

A run directory refuses a rerun with changed flags, so trying another RL setting on the same base
model, steering controllers and metacontroller means a new directory holding copies of them:

    python -m experiments.copy_run SRC DST rl_updates=60 rl_methods=subgoal_controllers
    python -m launch.main --preset=cpu --workdir=DST --rl_updates=60 --rl_methods=subgoal_controllers

Every phase directory except ``internal_rl`` is copied, ``config.json`` gets the given fields of
its ``rl`` section (each a field of ``configs.RLConfig``, of its type) and the stored results
lose their ``internal_rl`` entry, so the launcher skips the finished phases and runs RL afresh.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys

from experiments import configs

KEEP = ("data", "pretrain", "probe", "steer", "metacontroller", "plots")
FILES = ("config.json", "results.json", "run.json")


def copy_run(src: str, dst: str, rl_fields: dict[str, str]) -> None:
    config = json.load(open(os.path.join(src, "config.json")))
    # Fields added after the run was made are set from their current defaults' types.
    defaults = {f.name: f.default for f in dataclasses.fields(configs.RLConfig)}
    unknown = sorted(set(rl_fields) - set(defaults))
    if unknown:
        raise SystemExit(f"copy_run: {', '.join(unknown)} not among the rl fields "
                         f"({', '.join(sorted(defaults))})")
    if os.path.exists(dst):
        raise SystemExit(f"copy_run: {dst} exists; choose a new directory")
    os.makedirs(dst)
    for name in KEEP:
        if os.path.isdir(os.path.join(src, name)):
            shutil.copytree(os.path.join(src, name), os.path.join(dst, name))
    for name in FILES:
        shutil.copy(os.path.join(src, name), dst)
    for field, value in rl_fields.items():
        config["rl"][field] = type(defaults[field])(value)
    json.dump(config, open(os.path.join(dst, "config.json"), "w"), indent=2, sort_keys=True)
    results = json.load(open(os.path.join(dst, "results.json")))
    results.pop("internal_rl", None)
    json.dump(results, open(os.path.join(dst, "results.json"), "w"), indent=2, sort_keys=True)


if __name__ == "__main__":
    if len(sys.argv) < 3 or not all("=" in a for a in sys.argv[3:]):
        raise SystemExit("usage: python -m experiments.copy_run SRC DST [rl_field=value ...]")
    copy_run(sys.argv[1], sys.argv[2], dict(a.split("=", 1) for a in sys.argv[3:]))
