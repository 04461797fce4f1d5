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

    python -m experiments.goal_told --data=runs/gridworld_cpu --mode=told pretrain_steps=3000
"""
from __future__ import annotations

import argparse
import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import pretrain_levers
from hrl_internal.analysis import bayes, rollout
from hrl_internal.data import dataset, packing
from hrl_internal.envs import gridworld
from hrl_internal.models import transformer
from hrl_internal.training import pretrain

INIT_KEY, GOAL_KEY, BATCH_KEY, ROLLOUT_KEY = 11, 5, 12, 13
CHUNK, EVAL_ROWS, ROLLOUT_EPISODES = 100, 640, 512


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


def with_next_colour(episodes: dataset.Episodes, env: gridworld.EnvParams) -> dataset.Episodes:
    """The episodes with ``subgoals`` replaced by the next colour of the task at each step (so
    that ``packing.pack`` carries it into the rows' ``subgoals`` slot)."""
    tasks = np.asarray(gridworld.task_array(env))
    index = np.minimum(np.asarray(episodes.task_index), tasks.shape[1] - 1)
    return episodes._replace(subgoals=tasks[np.asarray(episodes.task_id)[:, None], index])


def loss_fn(params, rows: packing.PackedRows, model, env, told: bool):
    obs, _ = packing.observations(rows, env)
    goal = params["goal"][rows.subgoals.astype(jnp.int32)] * (1.0 if told else 0.0)
    outputs, _ = transformer.apply(params["base"], obs, model, segments=rows.segments,
                                   controller=lambda e, t: e + goal, layer=0)
    nll, correct = pretrain.action_losses(outputs["action_logits"], rows.actions)
    mask = rows.mask.astype(jnp.float32)
    return pretrain.masked_mean(nll, mask), pretrain.masked_mean(correct, mask)


@functools.partial(jax.jit, static_argnames=("model", "env", "hyper", "told"))
def train_chunk(params, opt_state, rows, step0, *, model, env, hyper, told):
    opt = pretrain.optimizer(hyper)

    def update(carry, step):
        params, opt_state = carry
        batch = pretrain.sample_batch(rows, jax.random.fold_in(jax.random.PRNGKey(BATCH_KEY),
                                                               step), hyper.batch_size)
        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, model, env,
                                                                      told)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(update, (params, opt_state),
                                               step0 + jnp.arange(CHUNK))
    return params, opt_state, jnp.mean(losses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a run directory with a finished data phase")
    parser.add_argument("--mode", choices=("told", "control"), default="told")
    parser.add_argument("--out", default=None, help="also write the log to this JSON file")
    parser.add_argument("overrides", nargs="*", help="field=value (and eval_every=500)")
    args = parser.parse_args()
    config, eval_every = pretrain_levers.parse_overrides(args.overrides)
    env = config.gridworld.env_params("pretrain")
    model = config.model.transformer(env)
    hyper = config.pretrain.hyper()
    told = args.mode == "told"
    train, _ = dataset.load(f"{args.data}/data/train.npz", env)
    held, _ = dataset.load(f"{args.data}/data/eval.npz", env)
    rows = jax.tree.map(jnp.asarray, packing.pack(with_next_colour(train, env), env))
    held_rows = jax.tree.map(lambda x: jnp.asarray(x[:EVAL_ROWS]),
                             packing.pack(with_next_colour(held, env), env))
    references = {"next_colour_reference": bayes.next_colour_scores(held, env),
                  "bayes_optimal": bayes.scores(held, env)}
    params = {"base": transformer.init(jax.random.PRNGKey(INIT_KEY), model),
              "goal": 0.1 * jax.random.normal(jax.random.PRNGKey(GOAL_KEY),
                                              (env.num_objects, model.d_model))}
    opt_state = pretrain.optimizer(hyper).init(params)
    evaluate = jax.jit(functools.partial(loss_fn, model=model, env=env, told=told))
    start, log = time.time(), []
    for step in range(0, config.pretrain.pretrain_steps, CHUNK):
        params, opt_state, loss = train_chunk(params, opt_state, rows, step, model=model, env=env,
                                              hyper=hyper, told=told)
        done = step + CHUNK
        if done % eval_every == 0 or done >= config.pretrain.pretrain_steps:
            scores = [evaluate(params, jax.tree.map(lambda x: x[i:i + 64], held_rows))
                      for i in range(0, EVAL_ROWS, 64)]
            row = {"step": done, "seconds": round(time.time() - start, 1),
                   "train_nll": float(loss),
                   "heldout_action_nll": float(np.mean([float(s[0]) for s in scores])),
                   "heldout_action_accuracy": float(np.mean([float(s[1]) for s in scores]))}
            log.append(row)
            print(json.dumps(row), flush=True)
    acted = acting(params, model, config, told)
    print(json.dumps({"acting": acted}), flush=True)
    out = {"mode": args.mode, "overrides": args.overrides, "log": log, "acting": acted,
           **{k: {"nll": v["nll"], "accuracy": v["accuracy"]} for k, v in references.items()}}
    print(json.dumps(out, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
