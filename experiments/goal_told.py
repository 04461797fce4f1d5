"""How fast can the base model learn to navigate when it is *told* where to go?

Trains the gridworld base model (the ``cpu`` preset, or ``field=value`` overrides) on a finished
run's data with a learned embedding of the true next colour added to its input embedding e_0
(``told``), or without it (``control``: the same model, initial parameters and batches). The told
model's held-out NLL against the next-colour reference (``analysis.bayes``: the expert's own
distribution, the best any predictor told the next colour can do) measures navigation alone; the
control's against the Bayes-optimal predictor measures navigation plus inferring the task. At the
end both act (the told model told the env's true next colour at every step): colours reached in
order per colour attempted, on the pretraining tasks and the 12-colour post-training task, are
what ground-truth steering of the base could reach at most if a written subgoal were as good as
being told. A diagnostic, not a method: the paper's base never sees the task.

``dropout`` tells the next colour on a random ``--told_prob`` of the legs (a leg: the steps
heading to one colour) and nothing on the others, so one model learns both to infer the colour
from the history and to act on it when told. Told nothing it is an ordinary base model (the same
parameters minus the colour table): ``--export=DIR`` writes it as the pretrain phase of a run
directory holding the data run's config and data, so the launcher's later phases (probe, steer,
metacontroller, internal RL) run on a base in which a written subgoal is known to pay. A toy
with a known answer for the metacontroller and internal RL, not the paper's base.

    python -m experiments.goal_told --data=runs/gridworld_cpu --mode=told pretrain_steps=3000 \
        obs_loss_weight=0
    python -m experiments.goal_told --data=runs/gridworld_cpu --mode=dropout --told_prob=0.5 \
        --export=runs/told50
    python -m launch.main --preset=cpu --workdir=runs/told50 --alpha=0.3

The loss is the pretrain phase's (action NLL plus λ times the next-observation NLL); the README's
told and control figures were made with the action term alone (``obs_loss_weight=0``).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import configs, pretrain_levers
from hrl_internal.analysis import bayes, rollout
from hrl_internal.data import dataset, packing
from hrl_internal.envs import gridworld
from hrl_internal.models import transformer
from hrl_internal.training import losses, pretrain
from launch import artefacts
from launch.rundir import RunDir, read_json, write_json

INIT_KEY, GOAL_KEY, BATCH_KEY, ROLLOUT_KEY = 11, 5, 12, 13
CHUNK, EVAL_ROWS, ROLLOUT_EPISODES = 100, 640, 512
MODES = ("told", "control", "dropout")


def tell_next_colour(goal: jax.Array, e: jax.Array, state: gridworld.EnvState) -> jax.Array:
    """``e + goal[c]`` for the colour the env says is next (the input edit the told model learnt
    with, at e_0). ``goal [num_objects, d_model]``, ``e [d_model]``."""
    colour = state.task[jnp.minimum(state.progress, state.task_len - 1)]
    return e + goal[colour]


def acting(params, model, config, told: bool) -> dict:
    """Success and colours per colour attempted of the model acting (sampled), told the next
    colour or not, on the pretraining tasks and the post-training task."""
    out = {}
    for task_set in ("pretrain", "posttrain"):
        env = config.gridworld.env_params(task_set)
        result = rollout.rollout(jax.random.PRNGKey(ROLLOUT_KEY), params["base"], model, env,
                                 ROLLOUT_EPISODES, layer=0,
                                 intervene=tell_next_colour if told else None,
                                 intervene_params=params["goal"] if told else None)
        out[task_set] = {"success": float(np.mean(result.success)),
                         "colour_success": rollout.colour_success(result)}
    return out


def told_legs(rows: packing.PackedRows, key: jax.Array, told_prob: float) -> jax.Array:
    """``[R, S]`` float: 1 on the slots of a random ``told_prob`` of the legs (runs of slots of
    one episode heading to one colour), 0 elsewhere."""
    colours, segments = rows.colours.astype(jnp.int32), rows.segments.astype(jnp.int32)
    new_leg = jnp.concatenate([jnp.ones_like(colours[:, :1], bool),
                               (colours[:, 1:] != colours[:, :-1])
                               | (segments[:, 1:] != segments[:, :-1])], axis=1)
    leg = jnp.cumsum(new_leg, axis=1) - 1
    draw = jax.random.uniform(key, colours.shape)
    return (jnp.take_along_axis(draw, leg, axis=1) < told_prob).astype(jnp.float32)


def loss_fn(params, rows: packing.PackedRows, model, env, told: jax.Array, obs_loss_weight):
    """``(loss, (action NLL, accuracy))``; ``told [R, S]`` weights the colour table's entry."""
    obs, next_obs = packing.observations(rows, env)
    goal = params["goal"][rows.colours.astype(jnp.int32)] * told[..., None]
    outputs, _ = transformer.apply(params["base"], obs, model, segments=rows.segments,
                                   controller=lambda e, t: e + goal, layer=0)
    nll, obs_nll, quality = losses.sequence_losses(outputs, rows.actions, next_obs)
    mask = rows.mask.astype(jnp.float32)
    action_nll = losses.masked_mean(nll, mask)
    loss = action_nll + obs_loss_weight * losses.masked_mean(obs_nll, mask)
    return loss, (action_nll, losses.masked_mean(quality["correct"], mask))


def told_mask(rows, key, mode: str, told_prob: float) -> jax.Array:
    if mode == "dropout":
        return told_legs(rows, key, told_prob)
    return jnp.full(rows.mask.shape, 1.0 if mode == "told" else 0.0)


@functools.partial(jax.jit, static_argnames=("model", "env", "hyper", "mode", "told_prob"))
def train_chunk(params, opt_state, rows, step0, *, model, env, hyper, mode, told_prob):
    opt = pretrain.optimizer(hyper)

    def update(carry, step):
        params, opt_state = carry
        key = jax.random.fold_in(jax.random.PRNGKey(BATCH_KEY), step)
        batch = packing.sample_batch(rows, key, hyper.batch_size)
        told = told_mask(batch, jax.random.fold_in(key, 1), mode, told_prob)
        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, batch, model, env, told, hyper.obs_loss_weight)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(update, (params, opt_state),
                                               step0 + jnp.arange(CHUNK))
    return params, opt_state, jnp.mean(losses)


def export(run: str, data_run: str, config, base, figures: dict) -> None:
    """Writes ``base`` as the finished pretrain phase of a new run directory ``run`` holding
    ``data_run``'s config and data phase (the launcher then runs only the later phases)."""
    if os.path.exists(run):
        raise SystemExit(f"--export: {run} exists; give a new directory")
    os.makedirs(run)
    for name in ("config.json", "run.json"):
        shutil.copy(os.path.join(data_run, name), run)
    shutil.copytree(os.path.join(data_run, "data"), os.path.join(run, "data"))
    phases = read_json(os.path.join(data_run, "phases.json"))
    write_json(os.path.join(run, "phases.json"),
               {k: v for k, v in phases.items() if k in ("data", "pretrain")})
    results = read_json(os.path.join(data_run, "results.json"))
    write_json(os.path.join(run, "results.json"), {"data": results["data"], "pretrain": figures})
    run_dir = RunDir(run)
    env, model = artefacts.env_and_model(config)
    hyper = config.pretrain.hyper(config.skip_nonfinite)
    state = pretrain.init_state(jax.random.PRNGKey(0), model, hyper)
    state = state._replace(params=base, step=jnp.asarray(config.pretrain.pretrain_steps,
                                                         jnp.int32))
    artefacts.base_checkpointer(run_dir).save(config.pretrain.pretrain_steps, state)
    run_dir.mark_done("pretrain", figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a run directory with a finished data phase")
    parser.add_argument("--mode", choices=MODES, default="told")
    parser.add_argument("--told_prob", type=float, default=0.5,
                        help="dropout: the fraction of legs told their colour")
    parser.add_argument("--export", default=None,
                        help="dropout: write the base (told nothing) as a new run directory's "
                        "pretrain phase")
    parser.add_argument("--out", default=None, help="also write the log to this JSON file")
    parser.add_argument("overrides", nargs="*", help="field=value (and eval_every=500)")
    args = parser.parse_args()
    if not 0 < args.told_prob < 1:
        raise SystemExit(f"--told_prob: must be in (0, 1), got {args.told_prob}")
    if args.export and args.mode != "dropout":
        raise SystemExit("--export: only with --mode=dropout (the base must work told nothing)")
    config, eval_every = pretrain_levers.parse_overrides(args.overrides)
    if args.export and configs.from_dict(
            read_json(os.path.join(args.data, "config.json"))) != config:
        raise SystemExit(f"--export: {args.data}'s config is not the cpu preset with "
                         f"{args.overrides}: the exported run would not match its config.json")
    env = config.gridworld.env_params("pretrain")
    model = config.model.transformer(env)
    hyper = config.pretrain.hyper()
    train, _ = dataset.load(f"{args.data}/data/train.npz", env)
    held, _ = dataset.load(f"{args.data}/data/eval.npz", env)
    rows = jax.tree.map(jnp.asarray, packing.pack(train, env))
    held_rows = jax.tree.map(lambda x: jnp.asarray(x[:EVAL_ROWS]), packing.pack(held, env))
    references = {"next_colour_reference": bayes.next_colour_scores(held, env),
                  "bayes_optimal": bayes.scores(held, env)}
    params = {"base": transformer.init(jax.random.PRNGKey(INIT_KEY), model),
              "goal": 0.1 * jax.random.normal(jax.random.PRNGKey(GOAL_KEY),
                                              (env.num_objects, model.d_model))}
    opt_state = pretrain.optimizer(hyper).init(params)

    @jax.jit
    def evaluate(params, rows, told):
        return loss_fn(params, rows, model, env, jnp.full(rows.mask.shape, told), 0.0)[1]

    def heldout(told: float) -> tuple[float, float]:
        scores = [evaluate(params, jax.tree.map(lambda x: x[i:i + 64], held_rows), told)
                  for i in range(0, EVAL_ROWS, 64)]
        return (float(np.mean([float(s[0]) for s in scores])),
                float(np.mean([float(s[1]) for s in scores])))

    told_at_eval = {"told": (1.0,), "control": (0.0,), "dropout": (0.0, 1.0)}[args.mode]
    start, log = time.time(), []
    for step in range(0, config.pretrain.pretrain_steps, CHUNK):
        params, opt_state, loss = train_chunk(params, opt_state, rows, step, model=model, env=env,
                                              hyper=hyper, mode=args.mode,
                                              told_prob=args.told_prob)
        done = step + CHUNK
        if done % eval_every == 0 or done >= config.pretrain.pretrain_steps:
            loss = float(loss)  # waits for the chunk: the time below is the training's
            row = {"step": done, "seconds": round(time.time() - start, 1), "train_loss": loss}
            for told in told_at_eval:
                tag = "" if len(told_at_eval) == 1 else ("told_" if told else "untold_")
                nll, acc = heldout(told)
                row.update({f"{tag}heldout_action_nll": nll, f"{tag}heldout_action_accuracy": acc})
            log.append(row)
            print(json.dumps(row), flush=True)
    acted = {"told": acting(params, model, config, True)} if args.mode != "control" else {}
    if args.mode != "told":
        acted["untold"] = acting(params, model, config, False)
    print(json.dumps({"acting": acted}), flush=True)
    out = {"mode": args.mode, "overrides": args.overrides, "log": log, "acting": acted,
           **{k: {"nll": v["nll"], "accuracy": v["accuracy"]} for k, v in references.items()}}
    if args.mode == "dropout":
        out["told_prob"] = args.told_prob
    print(json.dumps(out, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    if args.export:
        nll, acc = heldout(0.0)
        export(args.export, args.data, config, params["base"], {
            "steps": config.pretrain.pretrain_steps, "heldout_action_nll": nll,
            "heldout_action_accuracy": acc,
            "bayes_optimal_action_nll": references["bayes_optimal"]["nll"],
            "bayes_optimal_action_accuracy": references["bayes_optimal"]["accuracy"],
            "rollout_success": acted["untold"]["pretrain"]["success"],
            "rollout_colour_success": acted["untold"]["pretrain"]["colour_success"],
            "told_goal": {"mode": "dropout", "told_prob": args.told_prob,
                          "told_acting": acted["told"]}})
        print(f"exported the base to {args.export}: python -m launch.main --preset=cpu "
              f"--workdir={args.export} runs the later phases on it")


if __name__ == "__main__":
    main()
