"""The run directory: config, per-phase artefacts and completion markers, merged results.

Layout::

    DIR/config.json        the resolved config (a rerun with another config is refused)
    DIR/run.json           preset, seed, jax version, git revision, command line
    DIR/<phase>/           each phase's artefacts and checkpoints
    DIR/<phase>/done.json  written last: the phase finished (its results)
    DIR/results.json       every phase's figures, {phase: {name: value}}
    DIR/plots/             figures
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from typing import Any

import jax

from experiments import configs

MIN_FREE_BYTES = 200 * 2**20


def write_json(path: str, value: Any) -> None:
    """Atomic: write a temp file, then rename over the target."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True, default=_jsonable)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


class RunDir:
    """A run directory checked before any compute (see ``prepare``)."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)

    def phase_dir(self, phase: str) -> str:
        path = os.path.join(self.path, phase)
        os.makedirs(path, exist_ok=True)
        return path

    @property
    def plots_dir(self) -> str:
        path = os.path.join(self.path, "plots")
        os.makedirs(path, exist_ok=True)
        return path

    def is_done(self, phase: str) -> bool:
        return os.path.exists(os.path.join(self.path, phase, "done.json"))

    def mark_done(self, phase: str, results: dict[str, Any]) -> None:
        write_json(os.path.join(self.phase_dir(phase), "done.json"), results)

    def results(self) -> dict[str, dict[str, Any]]:
        path = os.path.join(self.path, "results.json")
        return read_json(path) if os.path.exists(path) else {}

    def merge_results(self, phase: str, figures: dict[str, Any]) -> None:
        results = self.results()
        results[phase] = figures
        write_json(os.path.join(self.path, "results.json"), results)


def prepare(path: str, config: configs.Config, preset: str) -> RunDir:
    """Creates ``path``, checks that it is writable, has room, and holds no other config's run;
    then saves the config. Raises ConfigError naming ``workdir`` otherwise."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-probe-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise configs.ConfigError("workdir", f"{path} is not a writable directory ({e.strerror})")
    free = shutil.disk_usage(path).free
    if free < MIN_FREE_BYTES:
        raise configs.ConfigError(
            "workdir", f"{path} has {free / 2**20:.0f} MiB free; at least "
                       f"{MIN_FREE_BYTES / 2**20:.0f} MiB are needed")
    run = RunDir(path)
    config_path = os.path.join(run.path, "config.json")
    wanted = configs.to_dict(config)
    if os.path.exists(config_path):
        held = with_new_defaults(read_json(config_path))
        if held != wanted:
            diff = _differences(held, wanted)
            raise configs.ConfigError(
                "workdir", f"{path} holds a run with another config ({diff}); "
                           "use a new --workdir or the same flags")
    write_json(config_path, wanted)
    write_json(os.path.join(run.path, "run.json"), {
        "preset": preset, "seed": config.seed, "argv": sys.argv,
        "jax_version": jax.__version__, "python": platform.python_version(),
        "git_revision": _git_revision(), "devices": [str(d) for d in jax.devices()],
    })
    return run


def with_new_defaults(held: dict[str, Any]) -> dict[str, Any]:
    """A stored config with the fields added to the code since it was written set to their
    defaults, which keep the behaviour the run had (a new option is off by default): such a run
    directory stays usable. A stored field the code no longer has is kept (and then differs)."""
    try:
        return configs.to_dict(configs.from_dict(held))
    except TypeError:
        return held


def _differences(held: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> str:
    out = []
    for key in sorted(set(held) | set(wanted)):
        a, b = held.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _differences(a, b, f"{key}.")
            if inner:
                out.append(inner)
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} there, {b!r} now")
    return "; ".join(out)


def _git_revision() -> str | None:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
