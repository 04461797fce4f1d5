"""Steering budget: supervised subgoal controllers at one layer of a finished run's base model,
against controller steps, batch and learning rate.

Trains the controllers of ``--layers`` (together, as the steer phase does) on the run's training
split and reports, for ``--layer``: the held-out steered NLL (64 packed rows) against the unsteered
model, and rollouts with ground-truth switching on the pretraining and post-training tasks, with
the per-colour hazard (the fraction of episodes that reach colour k+1 among those that reached
colour k: first colours of a pair need the controller, second colours only navigation), acting
sampled and greedy. ``form=affine`` adds an offset per subgoal (``e + U_g e + c_g``, not the
paper's form) and ``rank=d_model`` makes ``U_g`` full rank: is the linear low-rank edit what
limits steering? Appends one JSON line per run to ``--out``. The README's steering-budget and
controller-form figures were made with it on the default main job's run directory, one run at a
time on an idle 2-core CPU:

    python -m experiments.steer_budget --run=runs/gridworld_cpu steps=1600 lr=3e-3
    python -m experiments.steer_budget --run=runs/gridworld_cpu steps=4800 lr=3e-3 bs=8
    python -m experiments.steer_budget --run=runs/gridworld_cpu steps=4800 lr=3e-3 rank=128 \
        form=affine

``base_step=N`` steers the base as it was at pretraining step N (a checkpoint the run kept: train
with ``--checkpoint_every`` dividing N): steerability against the length of pretraining.
``tasks=A,B`` also scores ground-truth steering on other tasks written as colours (each under
``task_<colours>_...``): e.g. a 12-colour task made only of the pair transitions pretraining
shows, against the post-training task's unseen ones. ``train_tasks=posttrain`` (a diagnostic;
the paper trains the controllers on the pretraining demonstrations, ``run``) trains them on
``train_episodes`` fresh expert episodes of another task set: can the frozen base be steered
through transitions its pretraining never showed when the controllers have seen them?
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import configs
from hrl_internal.analysis import rollout, steering
from hrl_internal.data import dataset, packing
from hrl_internal.envs import gridworld
from launch import artefacts, scoring
from launch.rundir import RunDir, read_json

HELDOUT_ROWS = 64
FORMS = ("linear", "affine")


def hazard(result: rollout.RolloutResult, task_len: int) -> list[float | None]:
    """P(reach colour k+1 | reached colour k) for k = 0 .. task_len-1 (None: nobody reached k)."""
    p = np.asarray(result.progress)
    return [float(np.mean(p[p >= k] > k)) if np.any(p >= k) else None for k in range(task_len)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a run directory with data and pretrain done")
    parser.add_argument("--out", default="steer_budget.jsonl")
    parser.add_argument("settings", nargs="*", help="layer=2 layers=2 steps=400 lr=1e-3 bs=24 "
                        "rank=16 episodes=512 form=linear start_steps=0 start_weight=1 "
                        "base_step=latest tasks=0-1-4-5-0-1-4-5-0-1-4-5,... train_tasks=run "
                        "train_episodes=20000")
    args = parser.parse_args()
    opts = {"layer": "2", "steps": "400", "lr": "1e-3", "bs": "24", "rank": "16",
            "episodes": "512", "form": "linear", "start_steps": "0", "start_weight": "1",
            "base_step": "latest", "tasks": "", "train_tasks": "run", "train_episodes": "20000"}
    for item in args.settings:
        name, _, value = item.partition("=")
        if name not in opts and name != "layers":
            raise SystemExit(f"unknown setting {name!r}; allowed: layers, {', '.join(opts)}")
        opts[name] = value
    if opts["form"] not in FORMS:
        raise SystemExit(f"form: must be one of {', '.join(FORMS)}, got {opts['form']!r}")
    if opts["base_step"] != "latest" and not opts["base_step"].isdigit():
        raise SystemExit(f"base_step: must be 'latest' or a saved pretraining step, "
                         f"got {opts['base_step']!r}")
    base_step = None if opts["base_step"] == "latest" else int(opts["base_step"])
    extra = [t for t in opts["tasks"].split(",") if t]
    named = [("tasks", t) for t in extra]
    if opts["train_tasks"] != "run":
        named.append(("train_tasks", opts["train_tasks"]))
    for setting, task in named:
        try:
            gridworld.EnvParams(task_set=task).validate()
        except ValueError as e:
            raise SystemExit(f"{setting}: {task!r}: {e}") from None
    if not opts["train_episodes"].isdigit() or int(opts["train_episodes"]) < 1:
        raise SystemExit(f"train_episodes: must be a positive integer, "
                         f"got {opts['train_episodes']!r}")
    layer = int(opts["layer"])
    layers = tuple(int(x) for x in opts.get("layers", str(layer)).split(","))
    steps, lr, bs = int(opts["steps"]), float(opts["lr"]), int(opts["bs"])
    run = RunDir(args.run)
    config = configs.from_dict(read_json(f"{args.run}/config.json"))
    env = config.gridworld.env_params("pretrain")
    post = config.gridworld.env_params("posttrain")
    model = config.model.transformer(env)
    try:
        base = artefacts.load_params(run, config, base_step)
    except FileNotFoundError as e:
        raise SystemExit(f"base_step: {e}") from None
    if opts["train_tasks"] == "run":
        train_split = artefacts.load_split(run, config, "train")
    else:
        # A diagnostic, not the paper's protocol: clean expert demonstrations of other tasks.
        train_split = dataset.generate_chunked(jax.random.PRNGKey(33),
                                               config.gridworld.env_params(opts["train_tasks"]),
                                               int(opts["train_episodes"]), 0.0, chunk=5_000)
    rows = jax.tree.map(jnp.asarray, packing.pack(train_split, env))
    eval_rows = packing.pack(artefacts.load_split(run, config, "eval"), env)
    held = jax.tree.map(lambda x: jnp.asarray(x[:HELDOUT_ROWS]), eval_rows)
    # The base's own held-out figures at that step (the whole split, as the pretrain phase scores).
    scored = scoring.evaluate_rows(base, eval_rows, model, env)
    key = jax.random.PRNGKey(0)
    started = time.monotonic()
    ctrl, losses = steering.train(jax.random.fold_in(jax.random.fold_in(key, 31), layer), base,
                                  rows, model=model, env=env, layers=layers,
                                  rank=int(opts["rank"]), steps=steps, batch_size=bs,
                                  learning_rate=lr, affine=opts["form"] == "affine",
                                  start_steps=int(opts["start_steps"]),
                                  start_weight=float(opts["start_weight"]))
    i = layers.index(layer)
    losses = np.asarray(losses)[:, i]
    out = {"run": args.run, "base_step": opts["base_step"],
           "base_heldout_action_nll": float(scored["action_nll"]),
           "base_heldout_action_accuracy": float(scored["action_accuracy"]), "layer": layer,
           "layers": list(layers), "steps": steps, "lr": lr, "bs": bs, "rank": int(opts["rank"]),
           "form": opts["form"],
           "train_tasks": opts["train_tasks"], "start_steps": int(opts["start_steps"]),
           "start_weight": float(opts["start_weight"]),
           "train_s": time.monotonic() - started,
           "train_loss_last10pct": float(losses[-max(1, steps // 10):].mean()),
           "heldout_nll": float(steering.evaluate(ctrl, base, held, model=model, env=env,
                                                  layers=layers)[i]),
           "heldout_nll_unsteered": float(steering.evaluate(
               jax.tree.map(jnp.zeros_like, ctrl), base, held, model=model, env=env,
               layers=layers)[i])}
    eval_key = jax.random.fold_in(key, 32)
    tasks = [("pre", env), ("post", post)] + [
        (f"task_{t}", config.gridworld.env_params(t)) for t in extra]
    for name, e in tasks:
        for greedy in (False, True):
            r = steering.steered_rollout(eval_key, base, steering.layer_controllers(ctrl, i),
                                         model, e, layer, int(opts["episodes"]), greedy=greedy)
            tag = f"{name}_greedy" if greedy else name
            out[f"{tag}_success"] = float(np.mean(r.success))
            out[f"{tag}_colour_success"] = rollout.colour_success(r)
            out[f"{tag}_hazard"] = hazard(r, len(e.tasks[0]))
            anatomy = rollout.failure_anatomy(r, e.max_steps)
            out.update({f"{tag}_{k}": v for k, v in anatomy.items()})
    print(json.dumps(out))
    with open(args.out, "a") as f:
        f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
