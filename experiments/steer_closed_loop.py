"""Closed-loop steering anatomy: why do ground-truth-switched subgoal controllers reach the first
colour of a pair less often than its second?

On a finished run (the steer phase's controllers at ``--layer``), on the post-training task, with
ground-truth switching, acting sampled:

- ``edit scale``: the controller's edit multiplied by s (``e + s U_g e``). If the written subgoal
  were right but too faint against the history, a larger s would help.
- ``expert moves``: the expert takes the first k moves of every segment that starts a pair (a new
  subgoal), the model the rest, steered and unsteered. Once k moves have shown the way, the
  history names the subgoal; the pair-start rate under k tells how much of the loss is choosing
  the way at a segment's start, and the pair-second rate (the subgoal known from the history,
  steered or not) is the base's own navigation.
- ``first own move shortest``: among pair-start segments, how often the model's first move is one
  of the expert's shortest moves.
- ``--orders``: other colour orders (steered, k 0), with the per-position hazard
  P(reach colour k+1 | reached colour k): do late positions fail on every order (the base's
  length generalisation) or only at one transition?

No training; nothing is written to the run. The README's closed-loop figures were made with

    python -m experiments.steer_closed_loop runs/gridworld_cpu --layer=2 \\
        --orders=2-3-4-5-6-7-0-1-2-3-4-5,4-5-6-7-0-1-2-3-4-5-6-7,0-1-6-7-4-5-2-3-0-1-6-7,0-1-4-5-0-1-4-5-0-1-4-5 \\
        --out=experiments/results/gridworld_cpu_steer_closed_loop.json
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np

from experiments import steer_budget
from hrl_internal.analysis import rollout, steering
from hrl_internal.data import expert
from hrl_internal.envs import family, gridworld
from hrl_internal.models import backbone
from launch import artefacts, report
from launch.rundir import RunDir

SCALES = (0.5, 1.0, 1.5, 2.0, 3.0)
EXPERT_MOVES = (0, 1, 2, 3, 5)
KEY = 7


@functools.partial(jax.jit, static_argnums=(4, 5, 6, 7, 8))
def rollout_with_expert_moves(key, params, controllers, scale, model, env, layer, num_episodes,
                              expert_moves):
    """Episodes on ``env`` steered (``controllers`` not None) by the true subgoal's controller,
    its edit scaled by ``scale``; the expert acts for the first ``expert_moves`` moves of every
    segment that starts a pair. Returns the rollout and the fraction of pair-start segments whose
    first move by the model is a shortest one (counted where the model moves first: k = 0)."""
    reset_key, act_key = jax.random.split(key)
    state = jax.vmap(family.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_episodes), env)
    lower_cache, upper_cache = backbone.init_caches(model, layer, num_episodes, env.max_steps)
    net = backbone.module(model)
    batch = jnp.arange(num_episodes)

    def act(carry, step_key):
        state, since, lower_cache, upper_cache, shortest, starts = carry
        obs = jax.vmap(family.observe, in_axes=(0, None))(state, env)
        e, lower_cache = net.lower(params, lower_cache, obs, model, layer)
        if controllers is not None:
            edited = jax.vmap(steering.ground_truth_switching, in_axes=(None, 0, 0))(
                controllers, e, state)
            e = e + scale * (edited - e)
        outputs, upper_cache = net.upper(params, upper_cache, e, model, layer)
        model_key, expert_key = jax.random.split(step_key)
        own = backbone.sample_action(model_key, outputs)
        # One search per step serves both the expert's move and the check of the model's.
        best = jax.vmap(expert.best_moves, in_axes=(0, None))(state, env)
        safe = jax.vmap(expert.safe_actions, in_axes=(0, None))(state, env)
        guided = jax.vmap(expert.choose)(jax.random.split(expert_key, num_episodes), best, safe)
        pair_start = state.progress % gridworld.COLOURS_PER_SUBGOAL == 0
        first = pair_start & (since == 0) & ~state.done
        shortest = shortest + jnp.sum(first & best[batch, own])
        starts = starts + jnp.sum(first)
        action = jnp.where(pair_start & (since < expert_moves), guided, own)
        progress = state.progress
        state, _, _ = jax.vmap(family.step, in_axes=(0, 0, None))(state, action, env)
        since = jnp.where(state.progress != progress, 0, since + 1)
        return (state, since, lower_cache, upper_cache, shortest, starts), None

    carry = (state, jnp.zeros((num_episodes,), jnp.int32), lower_cache, upper_cache,
             jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    (final, _, _, _, shortest, starts), _ = jax.lax.scan(
        act, carry, jax.random.split(act_key, env.max_steps))
    result = rollout.RolloutResult(final.success, final.time, final.progress)
    return result, shortest / jnp.maximum(starts, 1)


def summary(result: rollout.RolloutResult, env, first_shortest) -> dict[str, float]:
    anatomy = rollout.failure_anatomy(result, env.max_steps)
    return {"success": float(np.mean(result.success)),
            "colour_success": rollout.colour_success(result),
            "pair_start_colour_success": anatomy["pair_start_colour_success"],
            "pair_second_colour_success": anatomy["pair_second_colour_success"],
            "first_own_move_shortest": float(first_shortest)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run directory with pretrain and steer done")
    parser.add_argument("--layer", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=1024)
    parser.add_argument("--orders", default="",
                        help="other colour orders, comma-separated (e.g. 2-3-4-5-6-7-0-1-2-3-4-5)")
    parser.add_argument("--out", default="", help="write the figures here as JSON")
    args = parser.parse_args()
    orders = [o for o in args.orders.split(",") if o]
    for order in orders:
        try:
            gridworld.parse_task(order)
        except ValueError:
            raise SystemExit(f"--orders: {order!r} is not a task: colours joined by '-', whole "
                             "pairs (e.g. 2-3-4-5-6-7-0-1-2-3-4-5)")
    _, config = report.load_run(args.run)
    if config is None or config.env != "gridworld":
        raise SystemExit(f"steer_closed_loop: {args.run} holds no gridworld run (config.json)")
    run = RunDir(args.run)
    _, model = artefacts.env_and_model(config)
    params = artefacts.load_params(run, config)
    controllers = artefacts.load_controllers(run, config, args.layer)
    post = config.gridworld.env_params("posttrain")
    key = jax.random.PRNGKey(KEY)
    out: dict = {"run": args.run, "layer": args.layer, "episodes": args.episodes,
                 "task": "posttrain", "edit_scale": {}, "expert_moves": {}}
    for scale in SCALES:
        result, first = rollout_with_expert_moves(key, params, controllers, scale, model, post,
                                                  args.layer, args.episodes, 0)
        out["edit_scale"][str(scale)] = summary(result, post, first)
        print("edit scale", scale, json.dumps(out["edit_scale"][str(scale)]), flush=True)
    for name, ctl in (("steered", controllers), ("unsteered", None)):
        out["expert_moves"][name] = {}
        for k in EXPERT_MOVES:
            result, first = rollout_with_expert_moves(key, params, ctl, 1.0, model, post,
                                                      args.layer, args.episodes, k)
            out["expert_moves"][name][str(k)] = summary(result, post, first)
            print(name, "expert moves", k, json.dumps(out["expert_moves"][name][str(k)]),
                  flush=True)
    out["orders"] = {}
    for order in [post.task_set] + orders:
        env = dataclasses.replace(post, task_set=order)
        env.validate()
        result, _ = rollout_with_expert_moves(key, params, controllers, 1.0, model, env,
                                              args.layer, args.episodes, 0)
        out["orders"][order] = {"success": float(np.mean(result.success)),
                                "colour_success": rollout.colour_success(result),
                                "hazard": steer_budget.hazard(result, len(env.tasks[0]))}
        print(order, json.dumps(out["orders"][order]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
