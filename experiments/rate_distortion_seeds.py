"""F4 over metacontroller seeds: the rate-distortion points of several finished metacontroller
phases on one base (``--meta_seed`` differs), gathered per α.

    python -m experiments.rate_distortion_seeds runs/rd runs/rd_s1 runs/rd_s2 \
        --plot experiments/results/gridworld_cpu_rate_distortion_seeds.png

Prints, per α, the seeds' NLL and KL (median and range), switch F1 and switches per episode,
and how many seeds switch in line with the subgoals (F1 >= 0.9, ``plots.ALIGNED_F1``, the
findings' criterion; the paper judged it by eye). ``--json`` writes the same as a file. The
plot draws every seed's point (filled: aligned) and the median over seeds per α.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np

from hrl_internal.analysis import plots
from launch.rundir import read_json, with_new_defaults, write_json


def gather(run_dirs: list[str]) -> dict[float, list[dict[str, Any]]]:
    """``{α: [point, ...]}`` over the runs' metacontroller sweeps (standard variant), each point
    with its run's ``meta_seed``; raises SystemExit naming a run without a finished phase."""
    by_alpha: dict[float, list[dict[str, Any]]] = {}
    for path in run_dirs:
        results = os.path.join(path, "results.json")
        if not os.path.exists(results) or "metacontroller" not in read_json(results):
            raise SystemExit(f"error: {path} has no finished metacontroller phase")
        config = with_new_defaults(read_json(os.path.join(path, "config.json")))
        seed = config["meta"]["meta_seed"]
        seed = config["seed"] if seed < 0 else seed
        for point in read_json(results)["metacontroller"]["sweep"]:
            if point["variant"] == "standard":
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
         path: str) -> None:
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
    plots.finish_rate_distortion(fig, ax, f"rate-distortion, metacontroller seeds (filled: "
                                 f"switch F1 ≥ {plots.ALIGNED_F1:g})", path, legend_size=7)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories with a finished metacontroller "
                        "phase on the same base")
    parser.add_argument("--plot", help="write the figure here")
    parser.add_argument("--json", help="write the per-α summary here")
    args = parser.parse_args(argv)
    by_alpha = gather(args.runs)
    rows = summarise(by_alpha)
    print(f"{'alpha':>6} {'seeds':>5} {'aligned':>7} {'nll (median, range)':>26} "
          f"{'kl (median, range)':>26}  switch F1")
    for r in rows:
        print(f"{r['alpha']:>6g} {len(r['seeds']):>5} {r['aligned_seeds']:>7} "
              f"{r['nll_median']:>8.3f} [{r['nll_range'][0]:.3f}, {r['nll_range'][1]:.3f}] "
              f"{r['kl_median']:>8.3f} [{r['kl_range'][0]:.3f}, {r['kl_range'][1]:.3f}]  "
              + " ".join(f"{f:.2f}" for f in r["switch_f1"]))
    if args.plot:
        plot(by_alpha, rows, args.plot)
    if args.json:
        write_json(args.json, {"runs": args.runs, "by_alpha": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
