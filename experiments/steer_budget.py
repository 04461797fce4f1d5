"""Steering budget: supervised subgoal controllers at one layer of a finished run's base model,
against controller steps, batch and learning rate.

Trains the controllers of ``--layers`` (together, as the steer phase does) on the run's training
split and reports, for ``--layer``: the held-out steered NLL (64 packed rows) against the unsteered
model, and rollouts with ground-truth switching on the pretraining and post-training tasks, with
the per-colour hazard (the fraction of episodes that reach colour k+1 among those that reached
colour k: first colours of a pair need the controller, second colours only navigation), acting
sampled and greedy. ``form=affine`` adds an offset per subgoal (``e + U_g e + c_g``, not the
paper's form) and ``rank=d_model`` makes ``U_g`` full rank: is the linear low-rank edit what
limits steering? ``form=affine rank=0`` is the offset alone, ``e + c_g`` (a steering vector per
subgoal: an edit that cannot depend on what the residual stream holds). Each task set records
the wrong colours its episodes entered, by task position; a single task also the shares, at its
later pair starts, of the colour the history predicts, the written pair's own second colour and
the colour just left (``..._pair_start_wrong_...``). Appends one JSON line per run to ``--out``.
The README's steering-budget and controller-form figures were made with it on the default main
job's run directory, one run at a time on an idle 2-core CPU:

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
``train_tasks=run+0-1-2-3-0-1-2-3`` adds such episodes to the run's own split: controllers that
have seen one unseen transition (01->23), scored on the post-training task's others.
``forget=none,upper,lower,both`` scores the same controllers again with the base forgetting the
episode's history at each subgoal change, in the blocks above the layer, below it, or all
(``rollout.rollout``'s ``forget``; tags ``<tasks>_forget_<mode>_...``): does the history before
a subgoal override the subgoal written at the layer? ``train_forget=both`` (or ``lower``,
``upper``) trains the controllers in that regime: attention restricted to the current subgoal's
steps (``packing.subgoal_segments``); the held-out NLL is then scored in it too.
"""
from __future__ import annotations

import argparse
import itertools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import configs
from hrl_internal.analysis import rollout, steering
from hrl_internal.data import dataset, packing
from hrl_internal.envs import gridworld
from hrl_internal.models import backbone
from launch import artefacts, scoring
from launch.rundir import RunDir, read_json

HELDOUT_ROWS = 64
FORMS = ("linear", "affine")


def hazard(result: rollout.RolloutResult, task_len: int) -> list[float | None]:
    """P(reach colour k+1 | reached colour k) for k = 0 .. task_len-1 (None: nobody reached k)."""
    p = np.asarray(result.progress)
    return [float(np.mean(p[p >= k] > k)) if np.any(p >= k) else None for k in range(task_len)]


def pair_start_wrong(counts: np.ndarray, task: tuple[int, ...],
                     seen: tuple[tuple[int, ...], ...]) -> dict[str, float | int]:
    """Where a single task's episodes go wrong at its later pair starts (positions 2, 4, ...):
    of the wrong colours entered there, the share that start a pair which follows the pair just
    completed somewhere in ``seen`` (the pretraining tasks: what the history predicts), the share
    that are the written pair's own second colour (the right pair, in the wrong order), and the
    share that are the colour just left (stepping back onto it counts as entering it). By chance
    (a wrong colour drawn uniformly from the other seven) these would be 2/7, 1/7 and 1/7."""
    pairs = lambda t: [tuple(t[i:i + 2]) for i in range(0, len(t), 2)]
    successors: dict[tuple[int, ...], set[int]] = {}
    for t in seen:
        ps = pairs(t)
        for p, q in zip(ps, ps[1:]):
            successors.setdefault(p, set()).add(q[0])
    total = to_seen = to_second = to_left = 0
    for k in range(2, len(task), 2):
        row = counts[k]
        total += int(row.sum())
        to_seen += int(sum(row[c] for c in successors.get(tuple(task[k - 2:k]), ())))
        to_second += int(row[task[k + 1]])
        to_left += int(row[task[k - 1]])
    return {"count": total, "to_seen_successor": to_seen / max(total, 1),
            "to_own_second_colour": to_second / max(total, 1),
            "to_colour_just_left": to_left / max(total, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a run directory with data and pretrain done")
    parser.add_argument("--out", default="steer_budget.jsonl")
    parser.add_argument("settings", nargs="*", help="layer=2 layers=2 steps=400 lr=1e-3 bs=24 "
                        "rank=16 episodes=512 form=linear start_steps=0 start_weight=1 "
                        "base_step=latest tasks=0-1-4-5-0-1-4-5-0-1-4-5,... train_tasks=run "
                        "train_episodes=20000 forget=none,upper,lower,both train_forget=none")
    args = parser.parse_args()
    opts = {"layer": "2", "steps": "400", "lr": "1e-3", "bs": "24", "rank": "16",
            "episodes": "512", "form": "linear", "start_steps": "0", "start_weight": "1",
            "base_step": "latest", "tasks": "", "train_tasks": "run", "train_episodes": "20000",
            "forget": "none", "train_forget": "none"}
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
    forgets = opts["forget"].split(",")
    if not forgets or any(f not in backbone.FORGET for f in forgets):
        raise SystemExit(f"forget: a comma-separated list of {', '.join(backbone.FORGET)}, "
                         f"got {opts['forget']!r}")
    if opts["train_forget"] not in backbone.FORGET:
        raise SystemExit(f"train_forget: must be one of {', '.join(backbone.FORGET)}, "
                         f"got {opts['train_forget']!r}")
    train_forget = opts["train_forget"]
    extra = [t for t in opts["tasks"].split(",") if t]
    named = [("tasks", t) for t in extra]
    # ``run+<task>``: the run's split and fresh demonstrations of <task>, one training set.
    extra_train = opts["train_tasks"].removeprefix("run+")
    if extra_train != "run":
        named.append(("train_tasks", extra_train))
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
                                               config.gridworld.env_params(extra_train),
                                               int(opts["train_episodes"]), 0.0, chunk=5_000)
        if opts["train_tasks"].startswith("run+"):
            train_split = dataset.concatenate([artefacts.load_split(run, config, "train"),
                                               train_split])
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
                                  start_weight=float(opts["start_weight"]),
                                  forget=train_forget)
    i = layers.index(layer)
    losses = np.asarray(losses)[:, i]
    out = {"run": args.run, "base_step": opts["base_step"],
           "base_heldout_action_nll": float(scored["action_nll"]),
           "base_heldout_action_accuracy": float(scored["action_accuracy"]), "layer": layer,
           "layers": list(layers), "steps": steps, "lr": lr, "bs": bs, "rank": int(opts["rank"]),
           "form": opts["form"],
           "train_tasks": opts["train_tasks"], "forget": forgets, "train_forget": train_forget,
           "start_steps": int(opts["start_steps"]),
           "start_weight": float(opts["start_weight"]),
           "train_s": time.monotonic() - started,
           "train_loss_last10pct": float(losses[-max(1, steps // 10):].mean()),
           "heldout_nll": float(steering.evaluate(ctrl, base, held, model=model, env=env,
                                                  layers=layers, forget=train_forget)[i]),
           "heldout_nll_unsteered": float(steering.evaluate(
               jax.tree.map(jnp.zeros_like, ctrl), base, held, model=model, env=env,
               layers=layers, forget=train_forget)[i])}
    eval_key = jax.random.fold_in(key, 32)
    tasks = [("pre", env), ("post", post)] + [
        (f"task_{t}", config.gridworld.env_params(t)) for t in extra]
    for (name, e), forget, greedy in itertools.product(tasks, forgets, (False, True)):
        r = steering.steered_rollout(eval_key, base, steering.layer_controllers(ctrl, i),
                                     model, e, layer, int(opts["episodes"]), greedy=greedy,
                                     forget=forget)
        tag = name + ("" if forget == "none" else f"_forget_{forget}") + (
            "_greedy" if greedy else "")
        out[f"{tag}_success"] = float(np.mean(r.success))
        out[f"{tag}_colour_success"] = rollout.colour_success(r)
        out[f"{tag}_hazard"] = hazard(r, len(e.tasks[0]))
        anatomy = rollout.failure_anatomy(r, e.max_steps)
        out.update({f"{tag}_{k}": v for k, v in anatomy.items()})
        counts = rollout.wrong_colours(r, e.max_steps, e.num_objects, len(e.tasks[0]))
        out[f"{tag}_wrong_colours"] = counts.tolist()
        if len(e.tasks) == 1:
            out.update({f"{tag}_pair_start_wrong_{k}": v for k, v in
                        pair_start_wrong(counts, e.tasks[0], env.tasks).items()})
    print(json.dumps(out))
    with open(args.out, "a") as f:
        f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
