"""F4 over metacontroller seeds: the rate-distortion points of several finished metacontroller
phases on one base (``--meta_seed`` differs), gathered per α, for one variant (``--variant``:
``standard``, the frozen base, or ``cotrain``, base and metacontroller trained jointly).

    python -m experiments.rate_distortion_seeds runs/rd runs/rd_s1 runs/rd_s2 \
        --plot experiments/results/gridworld_cpu_rate_distortion_seeds.png

``--train=RUN`` first trains the metacontrollers itself, on RUN's base and data: for each α of
``--alphas``, the seeds of ``--seeds`` vmapped in one program (each seed's initialisation and
batches are those ``--meta_seed=s`` gives the launcher's phase), scored as the phase scores them,
each seed written as a run directory ``--out/seed<s>`` that the gathering reads like the
launcher's. The seeds' directories are rewritten after every α, and an α that every seed of
``--out`` already has is not trained again, so a run cut short resumes at its first unfinished α:

    python -m experiments.rate_distortion_seeds --train=runs/gridworld_cpu --alphas=0,0.05,1 \
        --seeds=1,2,3 --out=runs/rd_vmap
    python -m experiments.rate_distortion_seeds --train=runs/gridworld_cpu --variant=cotrain \
        --alphas=0.17,0.3 --seeds=1,2,3 --out=runs/rd_cotrain_vmap

Prints, per α, the seeds' NLL and KL (median and range), switch F1 and switches per episode,
and how many seeds switch in line with the subgoals (F1 >= 0.9, ``plots.ALIGNED_F1``, the
findings' criterion; the paper judged it by eye). ``--json`` writes the same as a file. The
plot draws every seed's point (filled: aligned) and the median over seeds per α.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import configs
from hrl_internal.analysis import plots
from hrl_internal.training import metacontroller as meta_training
from launch import artefacts
from launch.phases import metacontroller as meta_phase
from launch.rundir import RunDir, read_json, with_new_defaults, write_json


VARIANTS = ("standard", "cotrain")  # the two that the paper's Fig. 7 draws


def seed_config(config: configs.Config, seed: int, alphas: list[float],
                variant: str = "standard") -> configs.Config:
    """The run's config as ``--meta_seed=seed --alpha=a,b,.. --metacontroller_variant=variant``
    sets it."""
    return configs.replace_fields(config, meta_seed=seed, alpha=",".join(f"{a:g}" for a in alphas),
                                  metacontroller_variant=variant)


def train_seeds(config: configs.Config, base: Any, rows: Any, alpha: float,
                seeds: list[int], on_chunk=None, variant: str = "standard"
                ) -> meta_training.MetaState:
    """``config.meta.meta_steps`` steps of one metacontroller of ``variant`` per seed, the seeds
    vmapped in one program; returns the states stacked over seeds (leading axis). Seed s starts
    from, and draws, what the launcher's phase does with ``--meta_seed=s`` (``cotrain``: its
    base model too, from a fresh initialisation; ``base`` is then unused)."""
    env, model = artefacts.env_and_model(config)
    m = config.meta
    per_seed = [seed_config(config, s, [alpha], variant) for s in seeds]
    states = jax.tree.map(lambda *x: jnp.stack(x),
                          *[meta_phase.template(c, variant, alpha, base) for c in per_seed])
    keys = jnp.stack([jax.random.fold_in(meta_phase.meta_key(c), meta_phase.BATCH_TAG)
                      for c in per_seed])
    steps = jax.vmap(lambda state, key, num: meta_training.train_steps(
        state, base, rows, key, model=model, meta=m.module(model.d_model), env=env,
        layer=m.layer, hyper=m.hyper(alpha, variant), num_steps=num), in_axes=(0, 0, None))
    steps = jax.jit(steps, static_argnums=2)
    done = 0
    while done < m.meta_steps:
        num = min(config.pretrain.steps_per_call, m.meta_steps - done)
        states, _ = jax.block_until_ready(steps(states, keys, num))  # honest progress
        done += num
        if on_chunk is not None:
            on_chunk(done)
    return states


def _written_points(out: str, seed: int) -> list[dict[str, Any]]:
    path = os.path.join(out, f"seed{seed}", "results.json")
    return read_json(path)["metacontroller"]["sweep"] if os.path.exists(path) else []


def train_and_write(run: str, alphas: list[float], seeds: list[int], out: str,
                    variant: str = "standard") -> list[str]:
    """``write_seeds`` on ``run``'s config, base and data."""
    run_dir = RunDir(run)
    config = configs.from_dict(with_new_defaults(read_json(os.path.join(run, "config.json"))))
    env, _ = artefacts.env_and_model(config)
    base = artefacts.load_params(run_dir, config)
    rows = jax.tree.map(jnp.asarray, artefacts.pack(artefacts.load_split(run_dir, config, "train"),
                                                    env))
    eval_rows = artefacts.pack(artefacts.load_split(run_dir, config, "eval"), env)
    return write_seeds(config, base, rows, eval_rows, alphas, seeds, out, variant, run)


def write_seeds(config: configs.Config, base: Any, rows: Any, eval_rows: Any,
                alphas: list[float], seeds: list[int], out: str, variant: str = "standard",
                trained_from: str = "") -> list[str]:
    """``train_seeds`` for each α, scored on ``eval_rows``, each seed's points written as
    ``out/seed<s>/{config,results}.json`` after every α; an α that every seed has there already
    is skipped (resuming a run cut short). Returns the seeds' directories."""
    points = {s: _written_points(out, s) for s in seeds}
    dirs = [os.path.join(out, f"seed{s}") for s in seeds]

    def has(s, alpha):
        return any(p["variant"] == variant and p["alpha"] == alpha for p in points[s])

    for alpha in alphas:
        if all(has(s, alpha) for s in seeds):
            print(f"[rate_distortion_seeds] {variant} α {alpha:g}: every seed is in {out}, kept")
            continue
        start = time.monotonic()
        states = train_seeds(config, base, rows, alpha, seeds, variant=variant,
                             on_chunk=lambda done: print(
            f"[rate_distortion_seeds] {variant} α {alpha:g}: {done}/{config.meta.meta_steps} "
            f"steps x {len(seeds)} seeds, {time.monotonic() - start:.0f} s", flush=True))
        for i, s in enumerate(seeds):
            params = jax.tree.map(lambda x: x[i], states.params)
            figures, _, _ = meta_phase.score(seed_config(config, s, [alpha], variant), params,
                                             base, eval_rows, variant, alpha)
            points[s] = [p for p in points[s] if not (p["variant"] == variant
                                                      and p["alpha"] == alpha)]
            points[s].append(meta_phase.sweep_point(variant, alpha, figures))
        for s, path in zip(seeds, dirs):  # after every α: a cut run loses at most one α
            os.makedirs(path, exist_ok=True)
            done = [p["alpha"] for p in points[s] if p["variant"] == variant]
            write_json(os.path.join(path, "config.json"),
                       configs.to_dict(seed_config(config, s, done, variant)))
            write_json(os.path.join(path, "results.json"),
                       {"metacontroller": {"sweep": points[s], "trained_from": trained_from}})
    return dirs


def gather(run_dirs: list[str], variant: str = "standard") -> dict[float, list[dict[str, Any]]]:
    """``{α: [point, ...]}`` over the runs' metacontroller sweeps (points of ``variant``), each
    point with its run's ``meta_seed``; raises SystemExit naming a run without a finished phase."""
    by_alpha: dict[float, list[dict[str, Any]]] = {}
    for path in run_dirs:
        results = os.path.join(path, "results.json")
        if not os.path.exists(results) or "metacontroller" not in read_json(results):
            raise SystemExit(f"error: {path} has no finished metacontroller phase")
        config = with_new_defaults(read_json(os.path.join(path, "config.json")))
        seed = config["meta"]["meta_seed"]
        seed = config["seed"] if seed < 0 else seed
        for point in read_json(results)["metacontroller"]["sweep"]:
            if point["variant"] == variant:
                by_alpha.setdefault(point["alpha"], []).append(dict(point, meta_seed=seed))
    return dict(sorted(by_alpha.items()))


def summarise(by_alpha: dict[float, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for alpha, points in by_alpha.items():
        seeds = [p["meta_seed"] for p in points]
        if len(set(seeds)) != len(seeds):
            raise SystemExit(f"error: α {alpha:g} appears twice for one metacontroller seed")
        f1 = np.array([p["switch_f1"] for p in points])
        row = {"alpha": alpha, "seeds": seeds,
               "aligned_seeds": int(np.sum(f1 >= plots.ALIGNED_F1)),
               "switch_f1": f1.tolist(),
               "switches_per_episode": [p["switches_per_episode"] for p in points]}
        for key in ("nll", "kl", "hard_beta_nll"):
            values = np.array([p[key] for p in points])
            row[f"{key}_median"] = float(np.median(values))
            row[f"{key}_range"] = [float(values.min()), float(values.max())]
        rows.append(row)
    return rows


def plot(by_alpha: dict[float, list[dict[str, Any]]], rows: list[dict[str, Any]],
         path: str, variant: str = "standard") -> None:
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, (alpha, points) in enumerate(by_alpha.items()):
        colour = plots.COLOURS[i % len(plots.COLOURS)]
        for p in points:
            aligned = p["switch_f1"] >= plots.ALIGNED_F1
            ax.plot(p["kl"], p["nll"], "o", color=colour, mfc=colour if aligned else "white",
                    ms=5, alpha=0.8)
        ax.plot([], [], "o", color=colour, label=f"α={alpha:g}: {rows[i]['aligned_seeds']}"
                f"/{len(points)} aligned")
    ax.plot([r["kl_median"] for r in rows], [r["nll_median"] for r in rows], "k-", lw=1,
            label="median over seeds")
    plots.finish_rate_distortion(fig, ax, f"rate-distortion, {variant} metacontroller seeds "
                                 f"(filled: switch F1 ≥ {plots.ALIGNED_F1:g})", path,
                                 legend_size=7)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="run directories with a finished metacontroller "
                        "phase on the same base")
    parser.add_argument("--train", help="a run directory with finished data and pretrain phases: "
                        "train the seeds of --seeds at each α of --alphas on it first")
    parser.add_argument("--variant", default="standard", choices=VARIANTS,
                        help="whose points: the frozen base's (standard) or co-trained (cotrain); "
                        "with --train, the variant trained")
    parser.add_argument("--alphas", default="0.3", help="with --train: comma-separated α values")
    parser.add_argument("--seeds", default="0", help="with --train: comma-separated seeds (>= 0)")
    parser.add_argument("--out", help="with --train: where the seeds' run directories go")
    parser.add_argument("--plot", help="write the figure here")
    parser.add_argument("--json", help="write the per-α summary here")
    args = parser.parse_args(argv)
    runs = list(args.runs)
    if args.train:
        try:
            alphas = [float(a) for a in args.alphas.split(",")]
            seeds = [int(x) for x in args.seeds.split(",")]
        except ValueError:
            parser.error(f"--alphas and --seeds: comma-separated numbers, got {args.alphas!r} "
                         f"and {args.seeds!r}")
        if any(a < 0 for a in alphas) or any(x < 0 for x in seeds) or len(set(seeds)) != len(seeds):
            parser.error("--alphas: values >= 0; --seeds: distinct values >= 0")
        if not args.out:
            parser.error("--train needs --out")
        if not os.path.exists(os.path.join(args.train, "pretrain", "done.json")):
            parser.error(f"--train: {args.train} has no finished pretrain phase")
        runs += train_and_write(args.train, alphas, seeds, args.out, args.variant)
    if not runs:
        parser.error("give run directories, or --train")
    by_alpha = gather(runs, args.variant)
    rows = summarise(by_alpha)
    print(f"{'alpha':>6} {'seeds':>5} {'aligned':>7} {'nll (median, range)':>26} "
          f"{'kl (median, range)':>26}  switch F1")
    for r in rows:
        print(f"{r['alpha']:>6g} {len(r['seeds']):>5} {r['aligned_seeds']:>7} "
              f"{r['nll_median']:>8.3f} [{r['nll_range'][0]:.3f}, {r['nll_range'][1]:.3f}] "
              f"{r['kl_median']:>8.3f} [{r['kl_range'][0]:.3f}, {r['kl_range'][1]:.3f}]  "
              + " ".join(f"{f:.2f}" for f in r["switch_f1"]))
    if args.plot:
        plot(by_alpha, rows, args.plot, args.variant)
    if args.json:
        write_json(args.json, {"runs": args.runs, "variant": args.variant, "by_alpha": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
