"""Do a finished run's metacontroller codes name subgoals, or places and moves of their own layout?

Replays held-out expert episodes from their start, the steered base model choosing at its k-th
switch (i) the k-th code the metacontroller inferred for that episode, (ii) the k-th code inferred
for *another* episode of the same task (another layout, the same colours in the same order) and
(iii) codes from the N(0, I) prior; plus the per-pair injection check (``latent_codes.reach_rates``).
Codes that name subgoals reproduce the subgoal order as well under (ii) as under (i); codes that
name where to go in their own layout fall to (iii). No training: it reads ``DIR`` and redraws
``DIR/plots/latent_codes.png`` (the same figures, so the same plot as the phase's).

    python -m experiments.code_meaning runs/gridworld_cpu [--variant=standard --alpha=0.1] [--out=FILE]
"""
from __future__ import annotations

import argparse
import json

from launch import report
from launch.phases import metacontroller as meta_phase
from launch.phases import pretrain as pretrain_phase
from launch.rundir import RunDir


def code_meaning(path: str, variant: str | None = None, alpha: float | None = None) -> dict:
    _, config = report.load_run(path)
    if config is None or config.env != "gridworld":
        raise SystemExit(f"code_meaning: {path} holds no gridworld run (config.json)")
    run_dir = RunDir(path)
    m = config.meta
    variant = variant or m.variants()[0]
    alpha = m.alphas()[0] if alpha is None else alpha
    base = pretrain_phase.load_params(run_dir, config)
    params = meta_phase.load(run_dir, config, variant, alpha)
    episodes = pretrain_phase.load_split(run_dir, config, "eval")
    rows = pretrain_phase.pack(episodes, pretrain_phase.env_and_model(config)[0])
    figures, beta, z = meta_phase.score(config, params, base, rows, variant, alpha)
    checks = meta_phase.latent_code_check(config, params, base, rows, z, beta, episodes, variant,
                                          run_dir.plots_dir)
    keep = ("action_nll", "kl", "f1", "switches_per_episode", "hard_beta_nll")
    return {"variant": variant, "alpha": alpha, **{k: figures[k] for k in keep}, **checks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path")
    parser.add_argument("--variant", default=None)
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    figures = code_meaning(args.path, args.variant, args.alpha)
    print(json.dumps(figures, indent=1))
    if args.out:
        json.dump(figures, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
