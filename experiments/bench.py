"""The benchmark: ``python -m experiments.bench --out=FILE.json [--rows=...] [--preset=...]``.

Rows (``--rows``, default all; ``main_job`` only where ``--main_results`` exists):

    env          gridworld steps/s and resets/s by batch (--env_batches), expert dataset episodes/s
    ant          MJX ant steps/s and resets/s by batch (--ant_batches; 8192 added on a GPU)
    matmul       float32 n x n matmul FLOP/s (--matmul_sizes): the ceiling of a CPU's MFU
    pretrain     pretraining tokens/s, FLOPs per step (counted by hand) and MFU against the
                 device's peak (--peak_tflops, a datasheet, or the matmul row's best on a CPU);
                 the model acting alone (KV caches)
    meta         metacontroller training steps/s at the paper's gridworld sizes (n_e 256, 6
                 layers, T 100, n_z 8, batch --meta_batch) and at the preset's
    internal_rl  internal-RL rollouts (env steps/s) and updates (updates/s) by slots
    raw_rl       the same for raw-action RL
    ratio        the O(1) check of acting with the base model in the loop (``ratio_rows``)
    main_job     compile seconds against wall seconds of a launcher run (--main_results)

Model sizes come from ``--preset`` (smoke, cpu, paper). Every row is timed after a warm-up call:
``compile_s`` is the tracing, lowering and compiling of that call, ``per_s`` the rate of the best
of ``--repeats`` timed calls, and ``recompiles_after_warmup`` the programs compiled during them.
Prints a table and the targets, and writes the rows, the device, the peak memory and the targets
as JSON. Every flag is checked before anything is measured.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
from typing import Any, Callable

import jax
from absl import app, flags, logging

from experiments import bench_env, bench_model, bench_rl, configs, timing
from hrl_internal.utils import compile_stats

META_SEEDS = 4  # the vmapped-seeds row
ROWS = ("env", "ant", "matmul", "pretrain", "meta", "internal_rl", "raw_rl", "ratio", "main_job")
META_SIZES = ("paper", "preset")
# The GPU-only rows' batches, added to the defaults when the first device is a GPU.
GPU_ANT_BATCH = 8192
GPU_RL_SLOTS = 4096
# The targets' thresholds.
RATIO_TARGET = 3.0  # predicted / measured internal-RL throughput
LATE_OVER_EARLY_TARGET = 1.5  # cached-step seconds late in an episode / early
COMPILE_FRACTION_TARGET = 0.25  # main job compile seconds / wall seconds
GPU_MAIN_JOB_SECONDS = 120.0
ANT_GPU_SPEEDUP = 10.0

PYTORCH_NOTE = ("compared with metacontroller-pytorch at the same sizes; the PyTorch figure is not "
                "measured here (no PyTorch install) and none is recorded in this repository")
RATIO_NOTE = (
    "O(1) acting: at batch B, (a) seconds per batched step of the bare RL-task env "
    "(rl_env_step row), (b) seconds per batched cached base-model step (lower + upper + heads "
    "with KV caches, mean of the early and late cached_step rows), (c) seconds per tick of an "
    "internal-RL rollout of B slots (internal_rl_rollout row: seconds / num_ticks; every tick "
    "advances each slot one env step, idle slots included, so c is an upper bound on the cost "
    "of a step). predicted = B / (a + b), measured = B / c, ratio = predicted / measured; the "
    f"target is ratio <= {RATIO_TARGET:g}. The tick also runs the controller decoder, the "
    "switching unit, the GRU history and the policy, so ratio > 1 is expected.")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The checked flags."""

    rows: tuple[str, ...]
    preset: str
    out: str
    repeats: int
    env_batches: tuple[int, ...]
    env_steps: int
    dataset_episodes: int
    ant_batches: tuple[int, ...]
    ant_steps: int
    data_episodes: int
    matmul_sizes: tuple[int, ...]
    train_batch: int
    train_steps: int
    rollout_batches: tuple[int, ...]
    meta_sizes: tuple[str, ...]
    meta_batch: int
    meta_steps: int
    rl_slots: tuple[int, ...]
    rl_update_slots: tuple[int, ...]
    start_ticks: int
    ratio_batch: int
    ratio_steps: int
    peak_tflops: float | None
    main_results: str
    cpu_reference: str
    command: str

    @property
    def config(self) -> configs.Config:
        return configs.preset(self.preset)


def define_flags(fv: flags.FlagValues) -> None:
    d = dict(flag_values=fv)
    flags.DEFINE_list("rows", None, f"rows to measure, among {', '.join(ROWS)} (default: all; "
                      "main_job only where --main_results exists)", **d)
    flags.DEFINE_string("preset", "cpu", f"model sizes, one of {', '.join(configs.PRESETS)}", **d)
    flags.DEFINE_string("out", None, "JSON path (default experiments/results/bench_<preset>.json)",
                        **d)
    flags.DEFINE_integer("repeats", 2, "timed calls per row after the warm-up (the best is kept)",
                         **d)
    flags.DEFINE_list("env_batches", ["1", "1024", "16384"], "gridworld batch sizes", **d)
    flags.DEFINE_integer("env_steps", 100, "env steps per timed rollout (one lax.scan)", **d)
    flags.DEFINE_integer("dataset_episodes", 10_000, "episodes in the expert-dataset row", **d)
    flags.DEFINE_list("ant_batches", None, "ant batch sizes (default 1,128,1024, and "
                      f"{GPU_ANT_BATCH} on a GPU)", **d)
    flags.DEFINE_integer("ant_steps", 50, "ant steps per timed rollout", **d)
    flags.DEFINE_integer("data_episodes", 2048, "expert episodes packed as training data for the "
                         "pretrain and meta rows", **d)
    flags.DEFINE_list("matmul_sizes", ["512", "1024", "2048"], "sides n of the float32 n x n "
                      "matmuls whose best FLOP/s is the ceiling a CPU's MFU is measured against",
                      **d)
    flags.DEFINE_integer("train_batch", None, "packed rows per pretraining step (default: the "
                         "preset's)", **d)
    flags.DEFINE_integer("train_steps", 10, "pretraining steps per timed call", **d)
    flags.DEFINE_list("rollout_batches", ["1", "1024"], "episodes per cached rollout (empty: none)",
                      **d)
    flags.DEFINE_list("meta_sizes", list(META_SIZES), "metacontroller rows: 'paper' (the "
                      "paper's gridworld sizes: n_e 256, 6 layers, T 100, n_z 8; batch "
                      "--meta_batch) and/or 'preset' (the preset's sizes and batch)", **d)
    flags.DEFINE_integer("meta_batch", 32, "packed rows per metacontroller step at paper sizes",
                         **d)
    flags.DEFINE_integer("meta_steps", 5, "metacontroller steps per timed call", **d)
    flags.DEFINE_list("rl_slots", None, "environments per RL rollout (default 1,256, and "
                      f"{GPU_RL_SLOTS} on a GPU)", **d)
    flags.DEFINE_list("rl_update_slots", ["256"], "environments per timed RL update (empty: "
                      "none)", **d)
    flags.DEFINE_integer("start_ticks", 20, "ticks during which RL slots start new episodes", **d)
    flags.DEFINE_integer("ratio_batch", 4096, "batch B of the O(1) ratio row", **d)
    flags.DEFINE_integer("ratio_steps", 10, "cached model steps per timed call (early and late)",
                         **d)
    flags.DEFINE_float("peak_tflops", None, "peak TFLOP/s for MFU (default: a table of known "
                       "accelerators by device kind, float32)", **d)
    flags.DEFINE_string("main_results", "experiments/results/gridworld_cpu_main.json",
                        "launcher results JSON of the main job (<phase>_seconds, compile_seconds)",
                        **d)
    flags.DEFINE_string("cpu_reference", "experiments/results/bench_cpu.json",
                        "a CPU benchmark JSON, for the GPU ant target", **d)


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise configs.ConfigError(name, f"must be a positive integer, got {value}")


def _batches(name: str, values: list[str], may_be_empty: bool = False) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in values)
    except ValueError:
        out = (0,)
    if (not out and not may_be_empty) or min(out, default=1) < 1:
        raise configs.ConfigError(name, f"must be comma-separated positive integers, got "
                                  f"{','.join(values)!r}")
    return out


def _device_default(values: list[str] | None, cpu: list[str], gpu_extra: int, gpu: bool
                    ) -> list[str]:
    """``values`` if given, else ``cpu`` plus the GPU-only batch on a GPU."""
    if values is not None:
        return values
    return cpu + [str(gpu_extra)] if gpu else cpu


def _rows(values: list[str] | None, main_results: str) -> tuple[str, ...]:
    if values is None:
        return tuple(r for r in ROWS if r != "main_job" or os.path.exists(main_results))
    unknown = [v for v in values if v not in ROWS]
    if unknown or not values:
        raise configs.ConfigError("rows", f"unknown row {(unknown or [''])[0]!r}; allowed: "
                                  f"{', '.join(ROWS)}")
    if "main_job" in values and not os.path.exists(main_results):
        raise configs.ConfigError("main_results", f"no such file {main_results!r} (needed by the "
                                  "main_job row)")
    return tuple(r for r in ROWS if r in values)


def parse(argv: list[str]) -> Settings:
    """Checked settings from ``argv`` (``argv[0]`` is the program); raises ``ConfigError`` naming
    the flag at fault before anything is measured."""
    fv = flags.FlagValues()
    define_flags(fv)
    try:
        rest = fv(argv)
    except flags.Error as e:
        name = re.search(r"--?(\w+)|'(\w+)'", str(e))
        raise configs.ConfigError(next(g for g in name.groups() if g) if name else "flags",
                                  str(e).splitlines()[0]) from None
    if len(rest) > 1:
        raise configs.ConfigError("flags", f"unexpected arguments {' '.join(rest[1:])}")
    config = configs.preset(fv.preset)  # raises for an unknown preset
    gpu = jax.devices()[0].platform == "gpu"
    for name in ("repeats", "env_steps", "dataset_episodes", "ant_steps", "data_episodes",
                 "train_batch", "train_steps", "meta_batch", "meta_steps", "start_ticks",
                 "ratio_batch", "ratio_steps"):
        _positive(name, fv[name].value)
    if not fv.meta_sizes or not set(fv.meta_sizes) <= set(META_SIZES):
        raise configs.ConfigError("meta_sizes", f"unknown value {','.join(fv.meta_sizes)!r}; "
                                  f"allowed: {', '.join(META_SIZES)}")
    if fv.peak_tflops is not None and fv.peak_tflops <= 0:
        raise configs.ConfigError("peak_tflops", f"must be positive, got {fv.peak_tflops}")
    if 2 * fv.ratio_steps > config.gridworld.max_steps:
        raise configs.ConfigError("ratio_steps", f"must be <= max_steps/2 = "
                                  f"{config.gridworld.max_steps // 2} (the early and late windows "
                                  f"must not overlap), got {fv.ratio_steps}")
    return Settings(
        rows=_rows(fv.rows, fv.main_results), preset=fv.preset,
        out=fv.out or f"experiments/results/bench_{fv.preset}.json", repeats=fv.repeats,
        env_batches=_batches("env_batches", fv.env_batches), env_steps=fv.env_steps,
        dataset_episodes=fv.dataset_episodes,
        ant_batches=_batches("ant_batches", _device_default(fv.ant_batches, ["1", "128", "1024"],
                                                            GPU_ANT_BATCH, gpu)),
        ant_steps=fv.ant_steps, data_episodes=fv.data_episodes,
        matmul_sizes=_batches("matmul_sizes", fv.matmul_sizes),
        train_batch=fv.train_batch or config.pretrain.batch_size, train_steps=fv.train_steps,
        rollout_batches=_batches("rollout_batches", fv.rollout_batches, may_be_empty=True),
        meta_sizes=tuple(m for m in META_SIZES if m in fv.meta_sizes), meta_batch=fv.meta_batch,
        meta_steps=fv.meta_steps,
        rl_slots=_batches("rl_slots", _device_default(fv.rl_slots, ["1", "256"], GPU_RL_SLOTS,
                                                      gpu)),
        rl_update_slots=_batches("rl_update_slots", fv.rl_update_slots, may_be_empty=True),
        start_ticks=fv.start_ticks, ratio_batch=fv.ratio_batch, ratio_steps=fv.ratio_steps,
        peak_tflops=fv.peak_tflops, main_results=fv.main_results, cpu_reference=fv.cpu_reference,
        command=" ".join(["python -m experiments.bench"] + list(argv[1:])))


# ---------------------------------------------------------------------------------------------
# Rows: each builder gets the settings and the rows measured so far, and returns new rows.

Rows = list[dict[str, Any]]


def _find(rows: Rows, name: str, batch: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["row"] == name and r["batch"] == batch), None)


def env_rows(s: Settings, done: Rows) -> Rows:
    env = s.config.gridworld.env_params("pretrain")
    out = [r for b in s.env_batches for r in bench_env.env_rows("env", env, b, s.env_steps,
                                                                 s.repeats)]
    return out + bench_env.dataset_rows(env, s.dataset_episodes, s.repeats)


def ant_rows(s: Settings, done: Rows) -> Rows:
    env = configs.preset(s.preset, "ant").ant.env_params("pretrain")
    return [r for b in s.ant_batches for r in bench_env.env_rows("ant", env, b, s.ant_steps,
                                                                 s.repeats)]


def matmul_rows(s: Settings, done: Rows) -> Rows:
    return bench_model.matmul_ceiling_rows(list(s.matmul_sizes), s.repeats)


def pretrain_rows(s: Settings, done: Rows) -> Rows:
    peak, peak_note = timing.peak_flops(jax.devices()[0].device_kind, s.peak_tflops)
    ceiling = [r for r in done if r["row"] == "matmul_ceiling"]
    if peak is None and ceiling:
        best = max(ceiling, key=lambda r: r["per_s"])
        peak = best["per_s"]
        peak_note = (f"this machine's measured float32 matmul ceiling, {peak / 1e9:.0f} GFLOP/s "
                     f"at {best['batch']}^3 (matmul_ceiling row; best of "
                     f"{', '.join(str(r['batch']) for r in ceiling)})")
    return (bench_model.pretrain_rows(s.config, s.train_batch, s.train_steps, s.repeats, peak,
                                      peak_note, s.data_episodes)
            + bench_model.cached_rollout_rows(s.config, list(s.rollout_batches), s.repeats))


def meta_rows(s: Settings, done: Rows) -> Rows:
    out = []
    if "paper" in s.meta_sizes:
        rows = bench_rl.meta_rows(configs.preset("paper"), s.meta_batch, s.meta_steps, s.repeats,
                                  "paper", s.data_episodes)
        out += [{**r, "note": PYTORCH_NOTE} for r in rows]
    if "preset" in s.meta_sizes:
        out += bench_rl.meta_rows(s.config, s.config.meta.meta_batch_size, s.meta_steps,
                                  s.repeats, s.preset, s.data_episodes)
        # Metacontroller seeds vmapped in one program (rate-distortion over seeds).
        out += bench_rl.meta_rows(s.config, s.config.meta.meta_batch_size, s.meta_steps,
                                  s.repeats, s.preset, s.data_episodes, seeds=META_SEEDS)
    return out


def _rl_rows(method: str) -> Callable[[Settings, Rows], Rows]:
    def build(s: Settings, done: Rows) -> Rows:
        setup = bench_rl.setup(s.config)
        out = [r for n in s.rl_slots
               for r in bench_rl.rollout_rows(setup, method, n, s.start_ticks, s.repeats)]
        return out + [r for n in s.rl_update_slots
                      for r in bench_rl.update_rows(setup, method, n, s.start_ticks, s.repeats)]
    return build


def ratio_rows(s: Settings, done: Rows) -> Rows:
    """The rows of (a), (b) and (c) (``RATIO_NOTE``) at ``--ratio_batch``, and the ratio; (c) is
    taken from an internal-RL row of the same batch where one was measured."""
    setup, B = bench_rl.setup(s.config), s.ratio_batch
    env_step = bench_env.env_rows("rl_env", setup.env_spec.env, B, s.env_steps, s.repeats)[0]
    early, late = bench_model.cached_step_rows(setup.base, setup.model, setup.env_spec.layer, B,
                                               s.ratio_steps, s.repeats)
    internal = _find(done, "internal_rl_rollout", B)
    out = [env_step, early, late]
    if internal is None:
        internal, = bench_rl.rollout_rows(setup, "internal_rl", B, s.start_ticks, s.repeats)
        out.append(internal)
    a = env_step["seconds_per_batched_step"]
    b = (early["seconds_per_batched_step"] + late["seconds_per_batched_step"]) / 2
    c = internal["seconds"] / internal["num_ticks"]
    predicted, measured = B / (a + b), B / c
    out.append({
        "row": "o1_ratio", "batch": B, "per_s": measured, "unit": "slot-steps/s",
        "compile_s": None, "recompiles_after_warmup": None, "predicted_per_s": predicted,
        "ratio": predicted / measured, "env_step_s": a, "model_step_s": b, "internal_tick_s": c,
        "late_over_early": late["seconds"] / early["seconds"],
        "internal_env_steps_per_s": internal["per_s"], "start_ticks": internal["start_ticks"],
        "derived_from": ["rl_env_step", "cached_step", "internal_rl_rollout"], "note": RATIO_NOTE})
    return out


def main_job_rows(s: Settings, done: Rows) -> Rows:
    """Compile seconds against wall seconds, summed over the phases of a launcher run."""
    with open(s.main_results) as f:
        results = json.load(f)
    phases = {k: {"seconds": v[f"{k}_seconds"], "compile_seconds": v.get("compile_seconds", 0.0)}
              for k, v in results.items() if isinstance(v, dict) and f"{k}_seconds" in v}
    wall = sum(p["seconds"] for p in phases.values())
    compile_s = sum(p["compile_seconds"] for p in phases.values())
    return [{"row": "main_job", "batch": None, "per_s": None, "unit": "s (read)",
             "compile_s": compile_s, "recompiles_after_warmup": None, "wall_s": wall,
             "compile_fraction": compile_s / wall if wall else None, "phases": phases,
             "source": s.main_results, "note": results.get("notes")}]


BUILDERS: dict[str, Callable[[Settings, Rows], Rows]] = {
    "env": env_rows, "ant": ant_rows, "matmul": matmul_rows, "pretrain": pretrain_rows, "meta": meta_rows,
    "internal_rl": _rl_rows("internal_rl"), "raw_rl": _rl_rows("raw_action_rl"),
    "ratio": ratio_rows, "main_job": main_job_rows,
}


# ---------------------------------------------------------------------------------------------
# Targets: each is measured where this device can measure it, else null.


def _target(name: str, measured: Any, threshold: float, met: bool | None,
            note: str = "") -> dict[str, Any]:
    return {"name": name, "measured": measured, "threshold": threshold, "met": met,
            **({"note": note} if note else {})}


def _ant_speedup(rows: Rows, cpu_reference: str) -> tuple[float | None, str]:
    gpu = _find(rows, "ant_step", GPU_ANT_BATCH)
    if gpu is None:
        return None, f"needs an ant_step row at batch {GPU_ANT_BATCH} (a GPU run)"
    if not os.path.exists(cpu_reference):
        return None, f"needs --cpu_reference ({cpu_reference} is missing)"
    with open(cpu_reference) as f:
        cpu = _find(json.load(f)["rows"], "ant_step", 1024)
    if cpu is None:
        return None, f"{cpu_reference} has no ant_step row at batch 1024"
    return gpu["per_s"] / cpu["per_s"], f"against {cpu_reference}"


def _field(row: dict[str, Any] | None, key: str) -> Any:
    return None if row is None else row.get(key)


def _at_most(value: float | None, threshold: float) -> bool | None:
    return None if value is None else bool(value <= threshold)


def targets(rows: Rows, platform: str, cpu_reference: str) -> list[dict[str, Any]]:
    """Each target's measured value, threshold and ``met`` (None where not measurable here)."""
    gpu = platform == "gpu"
    by_name = {r["row"]: r for r in rows}
    ratio, main = by_name.get("o1_ratio"), by_name.get("main_job")
    recompiles = total_recompiles(rows)
    fraction = _field(main, "compile_fraction")
    gpu_wall = _field(main, "wall_s") if gpu else None
    speedup, ant_note = _ant_speedup(rows, cpu_reference)
    mfu = _field(by_name.get("pretrain"), "mfu")
    return [
        _target("no recompilation after warm-up (programs compiled during the timed calls of "
                "every row)", recompiles, 0, recompiles == 0),
        _target("acting with the base model in the loop is O(1) per step: internal-RL throughput "
                "at the ratio batch within 3x of B / (env step + cached model step)",
                _field(ratio, "ratio"), RATIO_TARGET,
                _at_most(_field(ratio, "ratio"), RATIO_TARGET), "see the o1_ratio row's note"),
        _target("a cached model step late in an episode costs about what an early one does "
                "(O(1), not O(t)): late / early seconds", _field(ratio, "late_over_early"),
                LATE_OVER_EARLY_TARGET,
                _at_most(_field(ratio, "late_over_early"), LATE_OVER_EARLY_TARGET)),
        _target("main job compile seconds under 25% of its wall seconds", fraction,
                COMPILE_FRACTION_TARGET,
                None if fraction is None else fraction < COMPILE_FRACTION_TARGET,
                _field(main, "source") or ""),
        _target("cpu preset main job end to end under 2 minutes on a GPU", gpu_wall,
                GPU_MAIN_JOB_SECONDS, _at_most(gpu_wall, GPU_MAIN_JOB_SECONDS),
                "the --main_results file must come from a GPU run" if gpu
                else "not measurable on this device (no GPU)"),
        _target(f"MJX ant at batch {GPU_ANT_BATCH} >= 10x the CPU batch-1024 figure", speedup,
                ANT_GPU_SPEEDUP, None if speedup is None else speedup >= ANT_GPU_SPEEDUP,
                ant_note),
        _target("pretraining MFU reported", mfu, 0,
                True if mfu is not None else (False if gpu and "pretrain" in by_name else None),
                "" if mfu is not None else "no peak FLOP/s known for this device (--peak_tflops, "
                "or the matmul row on a CPU)"),
    ]


def total_recompiles(rows: Rows) -> int:
    return sum(r["recompiles_after_warmup"] or 0 for r in rows)


def run(s: Settings) -> dict[str, Any]:
    """Measures ``s.rows`` and returns the report (nothing written)."""
    compile_stats.totals()  # starts counting
    info = timing.device_info()
    rows: Rows = []
    for name in s.rows:
        start = time.perf_counter()
        new = BUILDERS[name](s, rows)
        for r in new:
            r["peak_host_mib_so_far"] = timing.peak_host_mib()
        rows += new
        print(f"[bench] {name}: {len(new)} rows in {time.perf_counter() - start:.0f} s", flush=True)
    return {**info, "command": s.command, "preset": s.preset, "settings": dataclasses.asdict(s),
            "peak_host_mib": timing.peak_host_mib(),
            "peak_device_bytes": timing.peak_device_bytes(),
            "recompiles_after_warmup": total_recompiles(rows),
            "load_average_1min_at_end": os.getloadavg()[0],
            "targets": targets(rows, info["platform"], s.cpu_reference), "rows": rows}


EXTRAS = ("sizes", "position", "mfu", "ratio", "late_over_early", "compile_fraction", "wall_s")


def print_report(report: dict[str, Any]) -> None:
    print(f"device {report['device']}, {report['cpu_count']} cores, jax {report['jax_version']}, "
          f"preset {report['preset']}; peak host memory {report['peak_host_mib']:.0f} MiB")
    print(timing.format_table(report["rows"], EXTRAS))
    for t in report["targets"]:
        met = {True: "met", False: "NOT met", None: "n/a"}[t["met"]]
        measured = "-" if t["measured"] is None else format(t["measured"], ".3g")
        print(f"[{met:>7}] {t['name']}: {measured} (threshold {t['threshold']:g})")


def main(argv: list[str]) -> int:
    """The exit code: 0 when the report was written, 2 for a bad flag (nothing measured)."""
    if any(a in ("-h", "--help", "--helpfull") for a in argv[1:]):
        fv = flags.FlagValues()
        define_flags(fv)
        print(__doc__)
        print(fv.get_help())
        return 0
    logging.set_verbosity(logging.WARNING)
    try:
        settings = parse(argv)
    except configs.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = run(settings)
    print_report(report)
    timing.write_json(report, settings.out)
    print(f"wrote {settings.out}")
    return 0


def _app_flags(argv: list[str]) -> list[str]:
    """absl's own flags stay at their defaults; ``main`` parses the rest into its own
    FlagValues, so these names never clash with the launcher's in one process."""
    flags.FLAGS(argv[:1])
    return argv


if __name__ == "__main__":
    app.run(main, flags_parser=_app_flags)
