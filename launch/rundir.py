"""The run directory: config, per-phase artefacts and completion markers, merged results.

Layout::

    DIR/config.json        the resolved config of the latest command
    DIR/phases.json        the config each phase ran with, {phase: config}
    DIR/run.json           preset, seed, jax version, git revision, command line
    DIR/<phase>/           each phase's artefacts and checkpoints
    DIR/<phase>/done.json  written last: the phase finished (its results)
    DIR/results.json       every phase's figures, {phase: {name: value}}
    DIR/plots/             figures
    DIR/replaced/<phase>/  a phase's outputs set aside when a changed config made it run again

In a multi-process run only process 0 writes here (``sharding.writes_files``); the launcher's
``sharding.sync`` after each step lets the others read what it wrote.

A rerun with other flags reuses every phase whose inputs (``phase_inputs``: the config fields it
reads, and those of the phases before it) are unchanged; the phases whose inputs changed are set
aside under ``replaced/`` and run again.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from typing import Any, Sequence

import jax

from experiments import configs
from hrl_internal.utils import sharding

MIN_FREE_BYTES = 200 * 2**20

# The config each phase reads, beyond what the phases before it read: whole sections, a
# section's fields by prefix (``section.prefix*``), or single fields (``section.field``; a bare
# name is a top-level field). ``on_nonfinite`` is read by none: it says what to do on a fault,
# and a run it let finish is the run it would have been.
PHASE_READS: dict[str, tuple[str, ...]] = {
    "data": ("env", "seed", "gridworld", "ant", "data"),
    "pretrain": ("model", "pretrain"),
    "probe": ("analysis.probe_*",),
    "steer": ("analysis.steer_*",),
    # The latent-code check runs the internal environment with the RL phase's time limit and slots.
    "metacontroller": ("meta", "rl.rl_max_steps", "rl.rl_slots", "rl.rl_start_ticks"),
    "internal_rl": ("rl",),
}


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
        if sharding.writes_files():
            write_json(os.path.join(self.phase_dir(phase), "done.json"), results)

    def record_config(self, phase: str, config: configs.Config) -> None:
        """Notes in phases.json that ``phase`` runs (or resumes) with ``config``."""
        if not sharding.writes_files():
            return
        path = os.path.join(self.path, "phases.json")
        held = read_json(path) if os.path.exists(path) else {}
        held[phase] = configs.to_dict(config)
        write_json(path, held)

    def set_aside_changed(self, held: dict[str, Any], wanted: dict[str, Any],
                          order: Sequence[str]) -> list[str]:
        """Moves the outputs of every phase whose inputs differ between the config it ran with
        (phases.json; ``held``, the run's last config, for a run made before it existed) and
        ``wanted`` to ``replaced/<phase>`` and drops its results; returns those phases."""
        path = os.path.join(self.path, "phases.json")
        ran = read_json(path) if os.path.exists(path) else {}
        stale = []
        for phase in order:
            if not os.path.isdir(os.path.join(self.path, phase)):
                continue
            before = with_new_defaults(ran[phase]) if phase in ran else held
            if phase_inputs(before, phase, order) == phase_inputs(wanted, phase, order):
                continue
            stale.append(phase)
            aside = os.path.join(self.path, "replaced", phase)
            shutil.rmtree(aside, ignore_errors=True)
            os.makedirs(os.path.dirname(aside), exist_ok=True)
            os.replace(os.path.join(self.path, phase), aside)
            ran.pop(phase, None)
        if stale:
            results = self.results()
            write_json(os.path.join(self.path, "results.json"),
                       {k: v for k, v in results.items() if k not in stale and k != "findings"})
            write_json(path, ran)
        return stale

    def results(self) -> dict[str, dict[str, Any]]:
        path = os.path.join(self.path, "results.json")
        return read_json(path) if os.path.exists(path) else {}

    def merge_results(self, phase: str, figures: dict[str, Any]) -> None:
        if not sharding.writes_files():
            return
        results = self.results()
        results[phase] = figures
        write_json(os.path.join(self.path, "results.json"), results)


def phase_inputs(config: dict[str, Any], phase: str, order: Sequence[str]) -> dict[str, Any]:
    """The part of ``config`` (a ``configs.to_dict``) that ``phase`` depends on: what it reads
    and what every phase before it in ``order`` reads, as ``{"section.field": value}``."""
    reads = [r for p in order[:list(order).index(phase) + 1] for r in PHASE_READS[p]]
    out = {}
    for name, value in flatten(config).items():
        for r in reads:
            if (name == r or name.startswith(f"{r}.")
                    or (r.endswith("*") and name.startswith(r[:-1]))):
                out[name] = value
                break
    return out


def flatten(results: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"metacontroller": {"switch_f1": x}}`` -> ``{"metacontroller.switch_f1": x}``."""
    out: dict[str, Any] = {}
    for key, value in results.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def prepare(path: str, config: configs.Config, preset: str,
            order: Sequence[str] = tuple(PHASE_READS)) -> RunDir:
    """Creates ``path``, checks that it is writable and has room, sets aside the phases of an
    earlier run whose inputs the config changes (``order``: the run's phases in dependency
    order), then saves the config. Raises ConfigError naming ``workdir`` on a bad directory.
    Every process checks the directory; only process 0 changes it."""
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
    if not sharding.writes_files():
        return run
    config_path = os.path.join(run.path, "config.json")
    wanted = configs.to_dict(config)
    if os.path.exists(config_path):
        held = with_new_defaults(read_json(config_path))
        if held != wanted:
            stale = run.set_aside_changed(held, wanted, order)
            print(f"[workdir] config changed ({_differences(held, wanted)}): "
                  + (f"{', '.join(stale)} will run again (earlier outputs in "
                     f"{os.path.join(run.path, 'replaced')}/)" if stale
                     else "no finished phase depends on it"))
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
