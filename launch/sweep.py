"""Sweeps by flags: ``python -m launch.sweep --sweep=FIELD=v1,v2,... [--sweep=...] --workdir=DIR
[any launch.main flag ...]``.

The grid is the product of every ``--sweep``, run seed by seed (``expand``).
Every point's config is built and checked before anything runs; then each point runs through
``launch.main`` in its own process into ``DIR/<point>/`` (e.g. ``DIR/alpha=0.1,seed=0/``), its
output streamed with a ``[sweep i/N point]`` prefix. Points that finished earlier are skipped
(``--force`` reruns them). Every other flag goes to ``launch.main`` unchanged.

Then the points are summarised (the paper's statistic): ``DIR/summary.json`` and
``DIR/summary.md`` hold every numeric figure of the points' results.json as median and 25-75%
quantiles over the points that differ only in ``seed``, and ``DIR/plots/`` the plots across points
(rate-distortion over α, RL success with quantile bands, probe and steering by layer).
``--summarize_only`` re-summarises ``DIR`` without running anything.

Layout::

    DIR/sweep.json          the grid: swept fields and values, the flags passed on, the points
    DIR/<point>/            a launch.main run directory (config, results.json, plots, ...)
    DIR/summary.{json,md}   figures per group of points: median, q25, q75, n
    DIR/plots/              plots across points
"""
from __future__ import annotations

import dataclasses
import difflib
import itertools
import os
import re
import subprocess
import sys
import time
from typing import Any, Callable, Iterable

import numpy as np
from absl import flags

from experiments import configs
from hrl_internal.analysis import plots
from hrl_internal.utils.progress import format_duration
from launch import flags as launch_flags
from launch import rundir
from launch.rundir import flatten
from launch.phases import phases_for

import matplotlib.pyplot as plt  # noqa: E402  (after ``plots``, which selects the Agg backend)

EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130
SEED = "seed"  # the field whose points are pooled into quantiles
SWEEP_FLAGS = ("sweep", "summarize_only", "workdir")  # the sweep's own; never passed on
MANIFEST, SUMMARY_JSON, SUMMARY_MD = "sweep.json", "summary.json", "summary.md"
MAX_LIST_SHOWN = 8  # longer lists (learning curves) are in summary.json only

Runner = Callable[[list[str], str], int]


class SweepError(Exception):
    """Bad input: one line on stderr, exit code 2, before anything runs."""


@dataclasses.dataclass(frozen=True)
class Point:
    name: str  # the directory name under DIR
    values: dict[str, str]  # swept field -> value as written on the command line


@dataclasses.dataclass(frozen=True)
class Plan:
    workdir: str
    axes: dict[str, list[str]]  # swept field -> values, in the order given
    points: list[Point]
    passed: list[str]  # flags passed on to launch.main unchanged
    phases: list[str]  # requested phases: a point is finished when each has its done.json
    force: bool


# ---------------------------------------------------------------------------------------------
# Parsing and checking: nothing runs before every point's config is valid.


def define_flags(flag_values: flags.FlagValues) -> None:
    """launch.main's flags plus ``--sweep`` and ``--summarize_only``."""
    launch_flags.define_flags(flag_values)
    flags.DEFINE_multi_string("sweep", [], "FIELD=v1,v2,...: one axis of the grid (repeatable)",
                              flag_values=flag_values)
    flags.DEFINE_bool("summarize_only", False, "re-summarise --workdir, run nothing",
                      flag_values=flag_values)


def parse_flags(argv: list[str]) -> flags.FlagValues:
    """A fresh FlagValues parsed from ``argv`` (``argv[0]`` is the program)."""
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    try:
        rest = flag_values(argv)
    except flags.Error as e:
        raise SweepError(str(e).splitlines()[0]) from None
    if len(rest) > 1:
        raise SweepError(f"unexpected arguments {' '.join(rest[1:])}; every option is a --flag")
    return flag_values


def parse_value(field: str, text: str, example: Any) -> Any:
    """``text`` as the type of the config field ``field`` (whose current value is ``example``)."""
    kind = type(example)
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise SweepError(f"--sweep: {field} takes true or false, got {text!r}")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise SweepError(f"--sweep: {field} takes {kind.__name__} values, got {text!r}"
                             ) from None
    return text


def parse_axes(specs: list[str], fields: dict[str, Any]) -> dict[str, list[str]]:
    """``["alpha=0.1,0.3", "seed=0,1"]`` -> ``{"alpha": ["0.1", "0.3"], "seed": ["0", "1"]}``.

    ``fields`` maps every config field to its current value (for its type). A comma always splits
    values, so a sweep over a field holding a comma list (``alpha``, ``rl_methods``) is a sweep
    over single values.
    """
    axes: dict[str, list[str]] = {}
    for spec in specs:
        field, sep, listed = spec.partition("=")
        field = field.strip()
        if not sep or not field:
            raise SweepError(f"--sweep: expected FIELD=v1,v2,..., got {spec!r}")
        if field not in fields:
            close = difflib.get_close_matches(field, list(fields), n=3)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise SweepError(f"--sweep: unknown config field {field!r}{hint}; allowed: any config "
                             f"field: {', '.join(sorted(fields))}")
        if field in axes:
            raise SweepError(f"--sweep: {field} is swept twice; give all its values in one --sweep")
        values = [v.strip() for v in listed.split(",")]
        if not all(values):
            raise SweepError(f"--sweep: {field} needs comma-separated values, got {listed!r}")
        parsed = [parse_value(field, v, fields[field]) for v in values]
        if len(set(parsed)) != len(parsed):
            raise SweepError(f"--sweep: {field} repeats a value in {listed!r}; values must differ")
        axes[field] = [str(p).lower() if isinstance(p, bool) else v for p, v in zip(parsed, values)]
    return axes


def point_name(values: dict[str, str]) -> str:
    """``{"alpha": "0.1", "seed": "0"}`` -> ``alpha=0.1,seed=0`` (a safe directory name)."""
    return ",".join(re.sub(r"[^A-Za-z0-9._+-]", "_", f"{k}") + "="
                    + re.sub(r"[^A-Za-z0-9._+-]", "_", v) for k, v in values.items())


def expand(axes: dict[str, list[str]]) -> list[Point]:
    """Every point of the grid: seed by seed (every setting for the first seed, then for the
    next, so that early results already span the settings), the other axes in the order given,
    the last one fastest. Names list the fields in that order with ``seed`` last."""
    order = [k for k in axes if k == SEED] + [k for k in axes if k != SEED]
    named = [k for k in axes if k != SEED] + [k for k in axes if k == SEED]
    points = []
    for combo in itertools.product(*(axes[k] for k in order)):
        values = dict(zip(order, combo))
        values = {k: values[k] for k in named}
        points.append(Point(point_name(values), values))
    return points


def check_points(base: configs.Config, points: list[Point]) -> None:
    """Builds and validates every point's config; raises SweepError naming the point and field."""
    fields = configs.leaf_fields(base)
    for point in points:
        typed = {k: parse_value(k, v, fields[k]) for k, v in point.values.items()}
        try:
            configs.validate(configs.replace_fields(base, **typed))
        except configs.ConfigError as e:
            raise SweepError(f"--sweep: point {point.name}: {e}") from None
    names = [p.name for p in points]
    if len(set(names)) != len(names):
        raise SweepError("--sweep: two points get the same directory name; use values that "
                         "differ in letters, digits or . _ + -")


def make_plan(flag_values: flags.FlagValues) -> Plan:
    """The checked grid; raises SweepError (or ConfigError) on any bad input."""
    if not flag_values.workdir:
        raise SweepError("--workdir: a sweep needs its directory, e.g. --workdir=runs/my_sweep")
    if not flag_values.sweep:
        raise SweepError("--sweep: give at least one FIELD=v1,v2,... (or --summarize_only)")
    overrides = launch_flags.config_overrides(flag_values)
    base = configs.preset(flag_values.preset, overrides.get("env", "gridworld"))
    base = configs.replace_fields(base, **overrides)
    configs.validate(base)
    axes = parse_axes(flag_values.sweep, configs.leaf_fields(base))
    for field in axes:
        if flag_values[field].present:
            raise SweepError(f"--sweep: {field} is also given as --{field}; give it one way")
    available = phases_for(base.env)
    phases = flag_values.phases or list(available)
    unknown = [p for p in phases if p not in available]
    if unknown:
        raise SweepError(f"--phases: unknown phase {unknown[0]!r} for --env={base.env}; "
                         f"allowed: {', '.join(available)}")
    points = expand(axes)
    check_points(base, points)
    passed = [line for name in flag_values if name not in SWEEP_FLAGS and flag_values[name].present
              for line in flag_values[name].serialize().splitlines()]
    return Plan(os.path.abspath(flag_values.workdir), axes, points, passed,
                [p for p in available if p in phases], flag_values.force)


# ---------------------------------------------------------------------------------------------
# Running the points.


def is_finished(path: str, phases: Iterable[str]) -> bool:
    """A point is finished when its results.json exists and every requested phase is done."""
    return (os.path.exists(os.path.join(path, "results.json"))
            and all(rundir.RunDir(path).is_done(p) for p in phases))


def point_argv(plan: Plan, point: Point) -> list[str]:
    return [sys.executable, "-m", "launch.main", *plan.passed,
            *[f"--{k}={v}" for k, v in point.values.items()],
            f"--workdir={os.path.join(plan.workdir, point.name)}"]


def run_process(argv: list[str], prefix: str) -> int:
    """Runs ``argv``, printing each line of its output after ``prefix``; its exit code."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # lines as they come, not per 8 KiB block
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, bufsize=1) as proc:
        for line in proc.stdout:
            print(f"{prefix} {line.rstrip()}", flush=True)
        return proc.wait()


def write_manifest(plan: Plan) -> None:
    os.makedirs(plan.workdir, exist_ok=True)
    rundir.write_json(os.path.join(plan.workdir, MANIFEST), {
        "axes": plan.axes, "passed": plan.passed, "phases": plan.phases,
        "points": [{"name": p.name, "values": p.values} for p in plan.points]})


def run_sweep(plan: Plan, runner: Runner = run_process,
              write: Callable[[str], Any] = print) -> list[str]:
    """Runs the points not finished earlier, one after another; the names of those that failed.

    ``runner(argv, prefix) -> exit code`` runs one point (a subprocess; tests pass a fake).
    """
    write_manifest(plan)
    total, start = len(plan.points), time.perf_counter()
    ran_seconds, ran, failed = 0.0, 0, []
    for i, point in enumerate(plan.points, 1):
        prefix = f"[sweep {i}/{total} {point.name}]"
        path = os.path.join(plan.workdir, point.name)
        if not plan.force and is_finished(path, plan.phases):
            write(f"{prefix} finished earlier; skipping (--force reruns it)")
        else:
            argv = point_argv(plan, point)
            write(f"{prefix} python {' '.join(argv[1:])}")
            began = time.perf_counter()
            code = runner(argv, prefix)
            ran_seconds += time.perf_counter() - began
            ran += 1
            if code == EXIT_INTERRUPTED:
                raise KeyboardInterrupt
            if code != 0:
                failed.append(point.name)
                write(f"{prefix} failed with exit code {code}; going on with the other points")
        write(progress_line(i, total, time.perf_counter() - start,
                            ran_seconds / ran if ran else None, len(failed)))
    return failed


def progress_line(done: int, total: int, elapsed: float, seconds_per_point: float | None,
                  failed: int) -> str:
    """``[sweep] 3/9 points (33%)  elapsed 0:12:00  ETA 0:24:00``: the ETA assumes every remaining
    point takes as long as the points run so far."""
    eta = "?" if seconds_per_point is None else format_duration((total - done) * seconds_per_point)
    line = (f"[sweep] {done}/{total} points ({100.0 * done / total:.0f}%)  "
            f"elapsed {format_duration(elapsed)}  ETA {eta}")
    return line + (f"  failed {failed}" if failed else "")


# ---------------------------------------------------------------------------------------------
# Aggregation: pure functions of the points' results (``flatten``: ``rundir.flatten``).


def _numeric(value: Any) -> Any:
    """``value`` as a float or a rectangular float array; None for strings, bools, ragged lists."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list) and value:
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            return None
        return array if array.dtype == float else None
    return None


def quantiles(values: Any) -> dict[str, Any]:
    """Median, 25% and 75% quantiles over the first axis of ``values [n, ...]``, and n.

    Scalars give floats; arrays element-wise nested lists.
    """
    stacked = np.asarray(values, dtype=float)
    q25, median, q75 = np.percentile(stacked, [25, 50, 75], axis=0)
    as_out = (lambda a: float(a)) if stacked.ndim == 1 else (lambda a: a.tolist())
    return {"median": as_out(median), "q25": as_out(q25), "q75": as_out(q75),
            "n": int(stacked.shape[0])}


def aggregate(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every numeric figure over the points of one group: ``{key: {median, q25, q75, n}}``.

    Scalars and equal-shaped lists (by layer, learning curves) aggregate element-wise over the
    points holding them. ``*_per_seed`` lists are pooled instead: their entries are seeds too
    (e.g. the vmapped RL seeds), so the quantiles run over every seed of every point.
    Figures whose shapes differ between points are left out.
    """
    per_key: dict[str, list[Any]] = {}
    for result in results:
        for key, value in flatten(result).items():
            number = _numeric(value)
            if number is not None:
                per_key.setdefault(key, []).append(number)
    out = {}
    for key in sorted(per_key):
        values = per_key[key]
        if key.endswith("_per_seed") and all(np.ndim(v) == 1 for v in values):
            out[key] = {**quantiles(np.concatenate(values)), "pooled": True}
        elif len({np.shape(v) for v in values}) == 1:
            out[key] = quantiles(values)
    return out


def group_of(point: Point, exclude: Iterable[str] = (SEED,)) -> str:
    """The group a point belongs to: its swept values but ``exclude`` (``all`` if none remain)."""
    kept = {k: v for k, v in point.values.items() if k not in set(exclude)}
    return point_name(kept) if kept else "all"


def rate_distortion(entries: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rate-distortion points over seeds, from ``(line, point)`` pairs, each point an entry of a
    run's ``metacontroller.sweep`` (variant, alpha, nll, kl, switch_f1).

    Returns one row per (line, variant, α): ``{line, variant, alpha, nll, kl, switch_f1}`` with
    each figure as ``{median, q25, q75, n}``, in order of line, variant and α.
    """
    cells: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
    for line, entry in entries:
        cells.setdefault((line, entry["variant"], float(entry["alpha"])), []).append(entry)
    return [{"line": line, "variant": variant, "alpha": alpha,
             **{k: quantiles([e[k] for e in found]) for k in ("nll", "kl", "switch_f1")}}
            for (line, variant, alpha), found in sorted(cells.items())]


def rl_curves(runs: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, list[float]]]:
    """Success curves over seeds, from ``(group, results)`` pairs: for every group and method
    whose ``internal_rl.<method>.curve`` ([episodes per seed, success] per update) has the same
    length in each point, the median episodes and the median, 25% and 75% success per update, as
    ``plots.plot_rl_curves`` reads them (its band: ``success_min``..``success_max``)."""
    found: dict[str, list[Any]] = {}
    groups = {g for g, _ in runs}
    for group, results in runs:
        for key, value in results.get("internal_rl", {}).items():
            if key.endswith(".curve") and _numeric(value) is not None:
                method = key[: -len(".curve")]
                label = method if len(groups) == 1 else f"{method} ({group})"
                found.setdefault(label, []).append(np.asarray(value, float))
    curves = {}
    for label, arrays in found.items():
        if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 2:
            continue
        stacked = np.stack(arrays)  # [points, updates, 2]
        q25, median, q75 = np.percentile(stacked[..., 1], [25, 50, 75], axis=0)
        curves[label] = {"episodes": np.median(stacked[..., 0], axis=0).tolist(),
                         "success": median.tolist(), "success_min": q25.tolist(),
                         "success_max": q75.tolist(), "n": len(arrays)}
    return curves


def summarize(workdir: str) -> dict[str, Any]:
    """Reads ``DIR/sweep.json`` and every point's results.json; writes ``summary.json``,
    ``summary.md`` and the plots across points. Returns the summary."""
    manifest_path = os.path.join(workdir, MANIFEST)
    if not os.path.exists(manifest_path):
        raise SweepError(f"--workdir: {workdir} holds no {MANIFEST}; run the sweep there first")
    manifest = rundir.read_json(manifest_path)
    points = [Point(p["name"], p["values"]) for p in manifest["points"]]
    results: dict[str, dict[str, Any]] = {}
    for point in points:
        path = os.path.join(workdir, point.name, "results.json")
        if os.path.exists(path):
            results[point.name] = rundir.read_json(path)
    groups: dict[str, list[Point]] = {}
    for point in points:
        groups.setdefault(group_of(point), []).append(point)
    summary = {
        "workdir": os.path.abspath(workdir),
        "axes": manifest["axes"],
        "grouped_by": [k for k in manifest["axes"] if k != SEED],
        "points": {p.name: {"values": p.values, "has_results": p.name in results,
                            "finished": is_finished(os.path.join(workdir, p.name),
                                                    manifest["phases"])} for p in points},
        "groups": [{"name": name, "values": {k: v for k, v in members[0].values.items()
                                              if k != SEED},
                    "points": [p.name for p in members if p.name in results],
                    "figures": aggregate([results[p.name] for p in members if p.name in results])}
                   for name, members in groups.items()],
    }
    entries = [(group_of(p, (SEED, "alpha")), e) for p in points if p.name in results
               for e in results[p.name].get("metacontroller", {}).get("sweep", [])]
    summary["rate_distortion"] = rate_distortion(entries)
    summary["rl_curves"] = rl_curves([(group_of(p), results[p.name]) for p in points
                                      if p.name in results])
    summary["plots"] = plot_summary(summary, os.path.join(workdir, "plots"))
    rundir.write_json(os.path.join(workdir, SUMMARY_JSON), summary)
    with open(os.path.join(workdir, SUMMARY_MD), "w") as f:
        f.write(markdown(summary))
    return summary


# ---------------------------------------------------------------------------------------------
# Writing it out.


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def cell(stats: dict[str, Any]) -> str:
    """``median [q25, q75] (n)``; lists as their medians; long or nested lists by their length."""
    median = stats["median"]
    if isinstance(median, float):
        return f"{_fmt(median)} [{_fmt(stats['q25'])}, {_fmt(stats['q75'])}] ({stats['n']})"
    if len(median) <= MAX_LIST_SHOWN and all(isinstance(m, float) for m in median):
        return "[" + ", ".join(_fmt(m) for m in median) + f"] ({stats['n']})"
    return f"{len(median)} points, in summary.json ({stats['n']})"


def markdown(summary: dict[str, Any]) -> str:
    """The summary as a markdown page: one row per figure, one column per group."""
    axes = summary["axes"]
    groups = summary["groups"]
    have = sum(p["has_results"] for p in summary["points"].values())
    lines = [f"# Sweep summary: {summary['workdir']}", "",
             "swept: " + "; ".join(f"{k} = {', '.join(v)}" for k, v in axes.items())
             + f" ({len(summary['points'])} points, {have} with results)", "",
             "Each cell: median [25%, 75%] over the points of the column that differ only in "
             "`seed` (n = how many hold the figure); `*_per_seed` figures pool every seed of every "
             "point. Timings (`*_seconds`) are in summary.json.", ""]
    keys = sorted({k for g in groups for k in g["figures"] if not k.endswith("_seconds")})
    lines.append("| figure | " + " | ".join(g["name"] for g in groups) + " |")
    lines.append("|---|" + "---|" * len(groups))
    for key in keys:
        row = [cell(g["figures"][key]) if key in g["figures"] else "" for g in groups]
        lines.append(f"| {key} | " + " | ".join(row) + " |")
    if summary["rate_distortion"]:
        lines += ["", "## Rate-distortion over α (held-out, metacontroller)", "",
                  "| runs | variant | α | KL per step | action NLL | switch F1 |",
                  "|---|---|---|---|---|---|"]
        for row in summary["rate_distortion"]:
            lines.append(f"| {row['line']} | {row['variant']} | {row['alpha']:g} | "
                         f"{cell(row['kl'])} | {cell(row['nll'])} | {cell(row['switch_f1'])} |")
    if summary["plots"]:
        lines += ["", "## Plots", ""]
        lines += [f"![{os.path.basename(p)}](plots/{os.path.basename(p)})"
                  for p in summary["plots"]]
    return "\n".join(lines) + "\n"


def plot_summary(summary: dict[str, Any], plots_dir: str) -> list[str]:
    """The plots across points that the summary supports; their paths."""
    made = []
    os.makedirs(plots_dir, exist_ok=True)
    rows = summary["rate_distortion"]
    if len({r["alpha"] for r in rows}) > 1:
        made.append(os.path.join(plots_dir, "rate_distortion.png"))
        plot_rate_distortion_quantiles(rows, made[-1])
    if summary["rl_curves"]:
        made.append(os.path.join(plots_dir, "internal_rl_success.png"))
        seeds = max(c["n"] for c in summary["rl_curves"].values())
        plots.plot_rl_curves(summary["rl_curves"], made[-1],
                             title=f"success per update: median over {seeds} runs, band 25-75%")
    # (figure, the figure holding its layers if not every layer, y label, file)
    for key, layers_key, ylabel, name in (
            ("probe.accuracy_by_layer", None, "subgoal probe accuracy (held-out)",
             "probe_accuracy_by_layer.png"),
            ("steer.posttrain_success_by_layer", "steer.layers", "post-training task success",
             "steer_success_by_layer.png")):
        bands, xs = {}, {}
        for g in summary["groups"]:
            stats = g["figures"].get(key)
            if stats is None or not isinstance(stats["median"], list):
                continue
            bands[g["name"]] = stats
            layers = g["figures"].get(layers_key, {}).get("median")
            xs[g["name"]] = layers if isinstance(layers, list) else range(len(stats["median"]))
        if bands:
            made.append(os.path.join(plots_dir, name))
            plot_bands(bands, xs, made[-1], "layer (0 = embedding)", ylabel,
                       f"{key}: median, band 25-75%")
    return made


def plot_rate_distortion_quantiles(rows: list[dict[str, Any]], path: str) -> None:
    """NLL against KL, one line per (runs, variant) over α: medians with 25-75% error bars on
    both axes (rate on a symlog axis); markers filled where the median switch F1 >=
    ``plots.ALIGNED_F1`` (as the phase's own plot)."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    lines = sorted({(r["line"], r["variant"]) for r in rows})
    for i, (line, variant) in enumerate(lines):
        mine = sorted((r for r in rows if (r["line"], r["variant"]) == (line, variant)),
                      key=lambda r: r["alpha"])
        colour = plots.COLOURS[i % len(plots.COLOURS)]
        kl = [r["kl"]["median"] for r in mine]
        nll = [r["nll"]["median"] for r in mine]
        label = variant if line == "all" else f"{variant} ({line})"
        ax.plot(kl, nll, "-", color=colour, label=label)
        for r in mine:
            aligned = r["switch_f1"]["median"] >= plots.ALIGNED_F1
            ax.errorbar(r["kl"]["median"], r["nll"]["median"], xerr=_error_bar(r["kl"]),
                        yerr=_error_bar(r["nll"]), fmt="o", color=colour,
                        mfc=colour if aligned else "white", capsize=2)
            ax.annotate(f"α={r['alpha']:g}", (r["kl"]["median"], r["nll"]["median"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    plots.finish_rate_distortion(fig, ax, "rate-distortion over α: median, bars 25-75% "
                                 f"(filled: switch F1 ≥ {plots.ALIGNED_F1:g})", path,
                                 title_size=9)


def _error_bar(stats: dict[str, float]) -> list[list[float]]:
    """matplotlib's ``[[below], [above]]`` for a median with its 25% and 75% quantiles."""
    return [[stats["median"] - stats["q25"]], [stats["q75"] - stats["median"]]]


def plot_bands(bands: dict[str, dict[str, Any]], xs: dict[str, Any], path: str, xlabel: str,
               ylabel: str, title: str) -> None:
    """One line per group: its median list against ``xs[group]``, with a 25-75% band."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for i, (label, stats) in enumerate(bands.items()):
        x = list(xs[label])
        colour = plots.COLOURS[i % len(plots.COLOURS)]
        ax.plot(x, stats["median"], "o-", color=colour, label=f"{label} (n={stats['n']})")
        ax.fill_between(x, stats["q25"], stats["q75"], color=colour, alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# The command.


def main(argv: list[str], runner: Runner = run_process) -> int:
    """The exit code: 0 when every point finished, 1 when some failed, 2 on bad input."""
    if any(a in ("-h", "--help", "--helpfull") for a in argv[1:]):
        print(__doc__)
        return 0
    try:
        flag_values = parse_flags(argv)
        if flag_values.summarize_only:
            if flag_values.sweep or not flag_values.workdir:
                raise SweepError("--summarize_only: give only --workdir=DIR of a sweep")
            summary = summarize(flag_values.workdir)
            print(markdown(summary))
            return 0
        plan = make_plan(flag_values)
    except (SweepError, configs.ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"[sweep] {len(plan.points)} points under {plan.workdir}: "
          + "; ".join(f"{k} = {', '.join(v)}" for k, v in plan.axes.items()), flush=True)
    try:
        failed = run_sweep(plan, runner)
    except KeyboardInterrupt:
        print("\n[sweep] interrupted; finished points are kept and the point running was "
              "checkpointed. Rerun the same command to go on.", file=sys.stderr)
        return EXIT_INTERRUPTED
    summary = summarize(plan.workdir)
    print()
    print(markdown(summary))
    print(f"summary: {os.path.join(plan.workdir, SUMMARY_MD)}  plots: "
          f"{os.path.join(plan.workdir, 'plots')}/")
    if failed:
        print(f"error: {len(failed)} of {len(plan.points)} points failed: {', '.join(failed)} "
              "(their output is above; rerun the same command to retry them)", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
