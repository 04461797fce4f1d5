"""The launcher: ``python -m launch.main --env=gridworld --preset=cpu --workdir=DIR``.

Resolves the config (preset, then flags), checks every value and the run directory before any
compute, then runs the requested phases in order, skipping the ones already finished (unless
``--force``), and prints the results table. In a workdir that holds a run with other flags, the
phases whose inputs changed are set aside and run again; the others are reused
(``rundir.PHASE_READS``).
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time

import jax
import numpy as np
from absl import app, flags, logging
from jax.experimental import multihost_utils

from experiments import configs
from hrl_internal.data import dataset
from hrl_internal.training import guards
from hrl_internal.utils import compile_stats, sharding
from launch import findings
from launch import flags as launch_flags
from launch import rundir
from launch.phases import PHASES, phases_for

FLAGS = flags.FLAGS
launch_flags.define_flags(FLAGS)

EXIT_BAD_INPUT = 2
EXIT_FAULT = 1  # a fault found mid-run (NaN/Inf, damaged data): one line, nothing half-written


class UsageError(Exception):
    """Bad input: reported as one line on stderr with exit code 2, before any compute."""


def resolve(flag_values: flags.FlagValues) -> tuple[configs.Config, list[str], str]:
    """Config, phases and workdir from the flags; raises ConfigError/UsageError on bad input."""
    overrides = launch_flags.config_overrides(flag_values)
    config = configs.preset(flag_values.preset, overrides.get("env", "gridworld"))
    config = configs.replace_fields(config, **overrides)
    configs.validate(config)
    available = phases_for(config.env)
    phases = flag_values.phases or list(available)
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        raise UsageError(f"--phases: unknown phase {unknown[0]!r}; allowed: {', '.join(PHASES)}")
    missing = [p for p in phases if p not in available]
    if missing:
        raise UsageError(f"--phases: phase {missing[0]!r} is not implemented for --env="
                         f"{config.env}; its phases: {', '.join(available)}")
    phases = [p for p in available if p in phases]  # dependency order, whatever order was given
    workdir = flag_values.workdir or f"runs/{config.env}_{flag_values.preset}"
    return config, phases, workdir


def data_parallel_mesh(config: configs.Config, num_devices: int) -> jax.sharding.Mesh:
    """The mesh the phases run over; raises ShardingError when a batch the run splits does not
    divide over it (before any compute)."""
    mesh = sharding.batch_mesh(num_devices)
    split = {"rl_slots": config.rl.rl_slots}
    if config.env == "ant":
        split["expert_envs"] = config.ant.expert_envs
    split.update(batch_size=config.pretrain.batch_size, meta_batch_size=config.meta.meta_batch_size)
    sharding.check_divisible(split, mesh.size)
    return mesh


def check_processes(config: configs.Config, phases: list[str], run: rundir.RunDir) -> None:
    """In a multi-process run (``--distributed``), before any compute: every process runs the
    same config and phases, in a workdir that every process sees (process 0 writes the run's
    files, the others read them). Raises the same UsageError on every process otherwise."""
    if jax.process_count() == 1:
        return
    # A value only process 0 knows, written by it: a process that reads it back sees its files
    # (a stale file from an earlier run cannot pass for it).
    nonce = int(multihost_utils.broadcast_one_to_all(np.int32(np.random.randint(1, 2**31 - 1))))
    token = os.path.join(run.path, ".process_check")
    if sharding.writes_files():
        with open(token, "w") as f:
            f.write(str(nonce))
    sharding.sync("process check written")
    try:
        with open(token) as f:
            sees = f.read() == str(nonce)
    except OSError:
        sees = False
    command = json.dumps([configs.to_dict(config), phases, FLAGS.force], sort_keys=True)
    digest = np.frombuffer(hashlib.sha256(command.encode()).digest()[:8], np.int32)
    rows = np.asarray(multihost_utils.process_allgather(
        np.array([*digest, sees], np.int32)))  # [processes, 3]
    sharding.sync("process check read")
    if sharding.writes_files():
        os.remove(token)
    differ = [i for i in range(len(rows)) if (rows[i, :2] != rows[0, :2]).any()]
    if differ:
        raise UsageError(f"--distributed: process {differ[0]} runs another config or --phases "
                         "than process 0; allowed: the same command on every process")
    blind = [i for i in range(len(rows)) if not rows[i, 2]]
    if blind:
        raise UsageError(f"--workdir: process {blind[0]} does not see what process 0 writes in "
                         f"{run.path}; allowed: a directory on a filesystem every process sees")


def print_config(config: configs.Config, preset: str, workdir: str,
                 mesh: jax.sharding.Mesh | None = None) -> None:
    devices = jax.devices()
    where = f"{devices[0].platform} x{mesh.size if mesh else 1}" + (
        " (data parallel)" if mesh and mesh.size > 1 else "")
    print(f"hrl_internal: env={config.env} preset={preset} workdir={workdir} devices={where}")
    for name, value in configs.leaf_fields(config).items():
        print(f"  {name:>24} = {value}")


def results_table(results: dict[str, dict]) -> str:
    """One row per figure, ``phase.name``; a top-level entry that is not a phase's figures (a
    stored file's ``notes``) is one row under its own name."""
    rows = []
    for phase, figures in results.items():
        if phase == "findings":  # a table of its own (``findings.findings_table``)
            continue
        if isinstance(figures, dict):
            rows += [(f"{phase}.{name}", value) for name, value in figures.items()]
        else:
            rows.append((phase, figures))
    width = max((len(k) for k, _ in rows), default=10)
    lines = [f"{'result':<{width}}  value", f"{'-' * width}  {'-' * 12}"]
    for key, value in rows:
        shown = _format(value)
        lines.append(f"{key:<{width}}  {shown}")
    return "\n".join(lines)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        if len(value) > 8:  # learning curves: the JSON has them whole
            return f"[{_format(value[0])}, ..., {_format(value[-1])}] ({len(value)} points)"
        return "[" + ", ".join(_format(v) for v in value) + "]"
    return str(value)


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.WARNING)  # keep jax's backend probing out of the output
    # Ctrl-C (SIGINT) always checkpoints and stops: a process started in the background by a shell
    # without job control inherits SIGINT ignored, and asyncio (inside orbax's saves) swaps in its
    # own handler while the default one is installed; an explicit handler rules out both.
    signal.signal(signal.SIGINT, _interrupt)
    if len(argv) > 1:
        _fail(f"unexpected arguments {' '.join(argv[1:])}; every option is a --flag")
    try:
        config, phases, workdir = resolve(FLAGS)
        if FLAGS.distributed:
            sharding.initialize_distributed()
        mesh = data_parallel_mesh(config, FLAGS.devices)
        run = rundir.prepare(workdir, config, FLAGS.preset, order=tuple(phases_for(config.env)))
        check_processes(config, phases, run)
    except (configs.ConfigError, UsageError, sharding.ShardingError) as e:
        _fail(str(e))
    if FLAGS.compilation_cache and not jax.config.jax_compilation_cache_dir:
        # A resumed run is a new process: without this it compiles again every program the
        # earlier phases had compiled in the interrupted one (the smoke preset's metacontroller
        # phase alone in a process: 200 programs, against 128 after the earlier phases). One
        # folder for all processes of a run: JAX writes its entries from process 0 only (the
        # others' keys name their own devices, so on a restart they compile again). A cache the
        # user set (JAX_COMPILATION_CACHE_DIR) is kept.
        compile_stats.use_persistent_cache(os.path.join(run.path, "compile_cache"))
    print_config(config, FLAGS.preset, run.path, mesh)
    with sharding.use(mesh):
        run_phases(config, phases, run)


def _programs(compiled: compile_stats.CompileTotals) -> str:
    """``N programs``, and how many more came from the compilation cache if any did."""
    loaded = f", {compiled.loaded} loaded from the cache" if compiled.loaded else ""
    return f"{compiled.programs} programs{loaded}"


def run_phases(config: configs.Config, phases: list[str], run: rundir.RunDir) -> None:
    """Runs ``phases`` in order (skipping finished ones unless ``--force``), recording each one's
    figures and compile time, then prints the results table."""
    job_start, job_compile = time.perf_counter(), compile_stats.totals()
    for phase in phases:
        if run.is_done(phase) and not FLAGS.force:
            print(f"[{phase}] finished earlier; skipping (--force reruns it)")
            continue
        print(f"[{phase}] starting")
        run.record_config(phase, config)
        start, compiled = time.perf_counter(), compile_stats.totals()
        try:
            figures = phases_for(config.env)[phase](config, run)
        except KeyboardInterrupt:
            print(f"\n[{phase}] interrupted; progress up to the last checkpoint is saved. "
                  "Rerun the same command to resume.", file=sys.stderr)
            sys.exit(130)
        except guards.NonFiniteError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(EXIT_FAULT)
        except dataset.DatasetError as e:
            print(f"error: [{phase}] {e}; regenerate it with --phases=data --force",
                  file=sys.stderr)
            sys.exit(EXIT_FAULT)
        figures[f"{phase}_seconds"] = time.perf_counter() - start
        compiled = compile_stats.totals() - compiled
        # Both depend on the persistent compilation cache's state, not on the run's config.
        figures["compile_seconds"], figures["compiled_programs"] = compiled.seconds, compiled.programs
        figures["loaded_programs"] = compiled.loaded
        run.merge_results(phase, figures)
        run.mark_done(phase, figures)
        sharding.sync(f"{phase} done")  # the later phases read what this one wrote
        print(f"[{phase}] done in {figures[f'{phase}_seconds']:.1f}s "
              f"(compiling {_programs(compiled)}: {compiled.seconds:.1f}s)")
    wall, compiled = time.perf_counter() - job_start, compile_stats.totals() - job_compile
    print(f"\nthis command: {wall:.0f}s, of which compiling {compiled.seconds:.0f}s "
          f"({compiled.seconds / max(wall, 1e-9):.0%}, {_programs(compiled)})")
    # The paper's findings against this run's figures (stored beside them, printed after them).
    results = run.results()
    judged = findings.findings(results)
    run.merge_results("findings", judged)
    print()
    print(results_table(results))
    print()
    print(findings.findings_table(judged))
    print(f"\nresults: {run.path}/results.json  plots: {run.path}/plots/")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's parser, with its errors turned into the one-line bad-input message."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        _fail(str(e).splitlines()[0])


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
