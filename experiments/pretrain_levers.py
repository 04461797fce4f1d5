"""Pretraining levers at equal data and seed: held-out accuracy against steps and seconds.

Trains the gridworld base model on a finished ``data`` phase's splits with the ``cpu`` preset and
the given field overrides, scoring the whole held-out split every ``--eval_every`` steps, and
writes ``experiments/results/pretrain_levers/<name>.json``. The comparison runs of the README's
"Base model" findings were made with it, one at a time on an idle 2-core CPU:

    python -m launch.main --phases=data --workdir=runs/levers_data
    python -m experiments.pretrain_levers --data=runs/levers_data --name=base \\
        pretrain_steps=1500 eval_every=500
    python -m experiments.pretrain_levers --data=runs/levers_data --name=cosine_2e-3 \\
        pretrain_steps=1500 eval_every=500 pretrain_schedule=cosine pretrain_warmup=100 \\
        pretrain_lr=0.002

Every run starts from the same initial parameters and draws the same batches (fixed keys,
independent of the overrides), so two runs differ only by what the overrides change.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp

from experiments import configs
from hrl_internal.data import dataset, packing
from hrl_internal.training import pretrain
from launch import scoring, sweep

INIT_KEY, BATCH_KEY = 11, 12
CHUNK = 100  # steps per jitted call


def parse_overrides(pairs: list[str]) -> tuple[configs.Config, int]:
    """The cpu preset with ``field=value`` overrides, and ``eval_every`` (default 500)."""
    base = configs.preset("cpu")
    values = configs.leaf_fields(base)
    overrides, eval_every = {}, 500
    for pair in pairs:
        name, _, text = pair.partition("=")
        if name == "eval_every":
            eval_every = int(text)
            continue
        if name not in values:
            raise SystemExit(f"unknown field {name!r}")
        overrides[name] = sweep.parse_value(name, text, values[name])
    config = configs.replace_fields(base, **overrides)
    configs.validate(config)
    if eval_every % CHUNK:
        raise SystemExit(f"eval_every must be a multiple of {CHUNK}, got {eval_every}")
    return config, eval_every


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a run directory with a finished data phase")
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", default=os.path.join("experiments", "results", "pretrain_levers"))
    parser.add_argument("overrides", nargs="*", help="field=value")
    args = parser.parse_args()
    config, eval_every = parse_overrides(args.overrides)
    env = config.gridworld.env_params("pretrain")
    model = config.model.transformer(env)
    hyper = config.pretrain.hyper()
    steps = config.pretrain.pretrain_steps
    train, _ = dataset.load(os.path.join(args.data, "data", "train.npz"), env)
    held, _ = dataset.load(os.path.join(args.data, "data", "eval.npz"), env)
    train_rows = jax.tree.map(jnp.asarray, packing.pack(train, env))
    held_rows = packing.pack(held, env)
    state = pretrain.init_state(jax.random.PRNGKey(INIT_KEY), model, hyper)
    key = jax.random.PRNGKey(BATCH_KEY)
    start, log = time.time(), []
    while int(state.step) < steps:
        num = min(CHUNK, steps - int(state.step))
        state, metrics = pretrain.train_steps(state, train_rows, key, model=model, env=env,
                                              hyper=hyper, num_steps=num)
        step = int(state.step)
        if step % eval_every == 0 or step == steps:
            scores = scoring.evaluate_rows(state.params, held_rows, model, env)
            row = {"step": step, "seconds": time.time() - start,
                   "train_action_accuracy": float(metrics["action_accuracy"]),
                   "heldout_action_accuracy": scores["action_accuracy"],
                   "heldout_action_nll": scores["action_nll"]}
            log.append(row)
            print(f"{args.name} step {step} {row['seconds']:.0f}s held-out accuracy "
                  f"{row['heldout_action_accuracy']:.4f} nll {row['heldout_action_nll']:.4f}",
                  flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"{args.name}.json"), "w") as f:
        json.dump({"name": args.name, "overrides": args.overrides, "log": log}, f, indent=1)


if __name__ == "__main__":
    main()
