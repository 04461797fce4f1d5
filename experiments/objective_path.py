"""Is there a wall between the metacontroller training finds and one whose codes name subgoals?

On the toy base with the per-episode s, codes that name subgoals are a lower point of the
metacontroller's objective than the collapsed codes training reaches from a random start
(``experiments.code_warm_start``). Both runs start from the same initialisation (the phase's
``template``) and see the same batches. This experiment walks the straight lines between three
points of parameter space and scores the objective along them (Goodfellow et al. 2015):

- ``init``: the phase's initialisation;
- ``found``: the run's own metacontroller (``PATH``, trained from ``init``);
- ``named``: the metacontroller of ``--named`` (a copy of the run whose metacontroller
  ``code_warm_start --save`` replaced: started at subgoal codes with the labels, then free).

At θ(λ) = (1 - λ) θ_a + λ θ_b, for each of init → found, init → named and found → named, the
held-out objective NLL + α KL with z = μ (as every held-out figure), and the training objective
with sampled codes on fixed training batches and noise (the number the optimiser lowers; common
random numbers keep the curve smooth) and on the same batches with z̃ = μ (what the codes would buy
without their noise), and each curve's largest rise (``largest_rise``). Read: a
rise along found → named (a barrier) says the collapsed point is a local minimum walled off from
the subgoal codes; a flat stretch along init → named, a plateau the optimiser has no reason to
cross while init → found descends. Only the straight line is walked: a wall
on it does not prove there is no other path.

    python -m experiments.objective_path runs/told50_ep --named=runs/told50_ep_ws \\
        --out=experiments/results/gridworld_cpu_objective_path.json
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from hrl_internal.training import metacontroller as meta_training
from hrl_internal.data.packing import sample_batch
from launch import artefacts, report
from launch.phases import metacontroller as meta_phase
from launch.rundir import RunDir

VARIANT = "standard"


def interpolate(a, b, lam: float):
    """The tree (1 - λ) a + λ b."""
    return jax.tree.map(lambda x, y: (1.0 - lam) * x + lam * y, a, b)


def largest_rise(values) -> float:
    """The most the curve climbs on its way from λ = 0 to 1: max over λ of the value less the
    least value before it (0 for a path that never goes up)."""
    values = np.asarray(values, float)
    return float(np.max(values - np.minimum.accumulate(values)))


def train_objective(params, base, data, key, *, model, meta, env, layer, alpha, batch_size,
                    num_batches, noise_scale=1.0, forget="none", rotate=False):
    """The training objective (codes sampled with ``noise_scale`` · σ; the base forgetting as
    ``forget`` says; ``rotate``: scored in the turned world of ``--meta_rotate``) averaged over
    ``num_batches`` fixed batches: the same batches, noise and turns for every ``params``."""
    def one(k):
        batch_key, noise_key = jax.random.split(k)
        batch = sample_batch(data, batch_key, batch_size)
        _, metrics = meta_training.loss_fn(params, base, batch, noise_key, model=model,
                                           meta=meta, env=env, layer=layer, alpha=alpha,
                                           noise_scale=noise_scale, forget=forget,
                                           **({"rotate": True} if rotate else {}))
        return metrics
    return jax.tree.map(jnp.mean, jax.lax.map(one, jax.random.split(key, num_batches)))


def objective_path(path: str, named: str, alpha: float | None, points: int,
                   num_batches: int, rotate: bool = False) -> dict:
    _, config = report.load_run(path)
    _, named_config = report.load_run(named)
    if config is None or config.env != "gridworld":
        raise SystemExit(f"objective_path: {path} holds no gridworld run (config.json)")
    if (named_config is None or named_config.model != config.model
            or named_config.meta.module(1) != config.meta.module(1)
            or named_config.meta.layer != config.meta.layer):
        raise SystemExit(f"objective_path: --named must be a copy of {path}: the same base model "
                         f"and metacontroller architecture and layer, got {named!r}")
    alpha = config.meta.alphas()[0] if alpha is None else alpha
    if alpha not in config.meta.alphas():
        raise SystemExit(f"objective_path: --alpha must be one the run trained "
                         f"({config.meta.alpha}), got {alpha}")
    if points < 2:
        raise SystemExit(f"objective_path: --points must be >= 2, got {points}")
    if num_batches < 1:
        raise SystemExit(f"objective_path: --num_batches must be >= 1, got {num_batches}")
    run_dir = RunDir(path)
    env, model = artefacts.env_and_model(config)
    m = config.meta
    hyper = m.hyper(alpha, VARIANT)
    module = meta_training.module_config(m.module(model.d_model), hyper)
    base = artefacts.load_params(run_dir, config)
    train_rows = jax.tree.map(jnp.asarray, artefacts.pack(
        artefacts.load_split(run_dir, config, "train"), env))
    rows = artefacts.pack(artefacts.load_split(run_dir, config, "eval"), env)
    ends = {"init": meta_phase.template(config, VARIANT, alpha).params,
            "found": artefacts.load_metacontroller(run_dir, config, VARIANT, alpha),
            "named": artefacts.load_metacontroller(RunDir(named), named_config, VARIANT, alpha)}
    train_fn = jax.jit(lambda p, noise: train_objective(
        p, base, train_rows, jax.random.PRNGKey(1), model=model, meta=module, env=env,
        layer=m.layer, alpha=alpha, batch_size=hyper.batch_size, num_batches=num_batches,
        noise_scale=noise, forget=hyper.forget, rotate=rotate))
    lams = np.linspace(0.0, 1.0, points)
    out = {"path": path, "named": named, "alpha": alpha, "layer": m.layer,
           "train_batches": num_batches, "batch_size": hyper.batch_size, "lambdas": lams.tolist(),
           "forget": hyper.forget, "train_rotate": rotate}
    t0 = time.time()
    for a, b in (("init", "found"), ("init", "named"), ("found", "named")):
        curve = {"heldout_objective": [], "heldout_nll": [], "heldout_kl": [],
                 "train_objective": [], "train_objective_z_mu": [],
                 "switches_per_episode": []}
        for lam in lams:
            params = interpolate(ends[a], ends[b], float(lam))
            figures, _, _ = meta_phase.score(config, params, base, rows, VARIANT, alpha)
            train, train_mu = train_fn(params, 1.0), train_fn(params, 0.0)
            curve["heldout_objective"].append(figures["action_nll"] + alpha * figures["kl"])
            curve["heldout_nll"].append(figures["action_nll"])
            curve["heldout_kl"].append(figures["kl"])
            curve["train_objective"].append(float(train["loss"]))
            curve["train_objective_z_mu"].append(float(train_mu["loss"]))
            curve["switches_per_episode"].append(figures["switches_per_episode"])
            print(f"[objective_path] {a} -> {b} λ {lam:.2f}: held-out objective "
                  f"{curve['heldout_objective'][-1]:.4f} (nll {figures['action_nll']:.4f}, kl "
                  f"{figures['kl']:.3f}), train objective {float(train['loss']):.4f} (z = μ "
                  f"{float(train_mu['loss']):.4f}), switches/ep "
                  f"{figures['switches_per_episode']:.2f} ({time.time() - t0:.0f} s)", flush=True)
        for name in ("heldout_objective", "train_objective", "train_objective_z_mu"):
            curve[name + "_rise"] = largest_rise(curve[name])
        out[f"{a}_to_{b}"] = curve
    out["seconds"] = time.time() - t0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", help="a finished gridworld run (its metacontroller: 'found')")
    parser.add_argument("--named", required=True,
                        help="a copy of PATH whose metacontroller code_warm_start --save replaced")
    parser.add_argument("--alpha", type=float, default=None,
                        help="the KL weight (one the run trained; default its first)")
    parser.add_argument("--points", type=int, default=11, help="λ values per line, ends included")
    parser.add_argument("--num_batches", type=int, default=16,
                        help="fixed training batches for the training objective")
    parser.add_argument("--rotate", action="store_true",
                        help="score the training objective in the turned world of --meta_rotate "
                             "(the held-out figures stay unturned)")
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    figures = objective_path(args.path, args.named, args.alpha, args.points, args.num_batches,
                             args.rotate)
    print(json.dumps({k: v for k, v in figures.items() if not isinstance(v, dict)}, indent=1))
    if args.out:
        json.dump(figures, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
