"""Phase ``pretrain``: the base model learns next-action prediction on expert demonstrations.

Checkpoints (orbax) every ``checkpoint_every`` steps and on Ctrl-C; a rerun resumes from the
latest checkpoint and ends with the same parameters as an uninterrupted run. Writes
``DIR/pretrain/metrics.jsonl`` (one line per jitted call), the final params checkpoint, and the
training-curve plot.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import configs
from hrl_internal.analysis import bayes, plots, rollout
from hrl_internal.envs import family
from hrl_internal.training import guards, pretrain
from hrl_internal.utils.metrics import MetricsWriter
from hrl_internal.utils.progress import Progress
from launch import artefacts, scoring
from launch.rundir import RunDir

INIT_TAG, BATCH_TAG, ROLLOUT_TAG = 11, 12, 13


def bayes_reference(figures: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """The Bayes-optimal held-out (NLL, accuracy) as a plot reference, where measured."""
    if "bayes_optimal_action_accuracy" not in figures:
        return {}
    return {"Bayes-optimal (held out)": (figures["bayes_optimal_action_nll"],
                                         figures["bayes_optimal_action_accuracy"])}


def run(config: configs.Config, run_dir: RunDir) -> dict[str, Any]:
    env, model = artefacts.env_and_model(config)
    p = config.pretrain
    hyper = p.hyper(config.skip_nonfinite)
    train_rows = jax.tree.map(
        jnp.asarray, artefacts.pack(artefacts.load_split(run_dir, config, "train"), env))
    eval_episodes = artefacts.load_split(run_dir, config, "eval")
    eval_rows = artefacts.pack(eval_episodes, env)
    quality = scoring.quality_key(model)
    # The held-out rows scored after every call, shaped like the final scoring's chunks.
    probe_rows = jax.tree.map(jnp.asarray,
                              scoring.chunk_of(eval_rows, 0,
                                               min(scoring.EVAL_ROWS, eval_rows.num_rows)))
    print(f"[pretrain] {train_rows.num_rows} packed rows of {env.max_steps} slots "
          f"({float(jnp.mean(train_rows.mask)):.0%} filled), batch {p.batch_size} rows")

    seed_key = jax.random.PRNGKey(config.seed)
    template = pretrain.init_state(jax.random.fold_in(seed_key, INIT_TAG), model, hyper)
    ckpt = artefacts.base_checkpointer(run_dir)
    state, resumed = ckpt.restore_or(template)
    start_step = int(state.step)
    if resumed:
        print(f"[pretrain] resuming from step {start_step}")
    batch_key = jax.random.fold_in(seed_key, BATCH_TAG)
    writer = MetricsWriter(os.path.join(run_dir.phase_dir("pretrain"), "metrics.jsonl"),
                           truncate_after=start_step)
    progress = Progress("pretrain", p.pretrain_steps, unit="steps", start=start_step,
                        also_per_s={"tokens": p.batch_size * env.max_steps})
    logged = state
    try:
        while int(state.step) < p.pretrain_steps:
            num = min(p.steps_per_call, p.pretrain_steps - int(state.step))
            state, metrics = pretrain.train_steps(state, train_rows, batch_key, model=model,
                                                  env=env, hyper=hyper, num_steps=num)
            guards.check(metrics, "pretrain", config.on_nonfinite)
            step = int(state.step)
            held = pretrain.evaluate(state.params, probe_rows, model=model, env=env)
            line = {k: float(v) for k, v in metrics.items() if k != "first_nonfinite_step"}
            line.update({"heldout_action_nll": float(held["action_nll"]),
                         f"heldout_{quality}": float(held[quality])})
            writer.write(step, line)
            progress.update(step, loss=line["loss"], **{quality: line[quality],
                                                        f"heldout_{quality}": line[f"heldout_{quality}"]})
            logged = state
            if step % p.checkpoint_every == 0 or step == p.pretrain_steps:
                ckpt.save(step, state)
    except KeyboardInterrupt:
        # The last state whose metrics line is written (the launcher then says how to resume).
        ckpt.save(int(logged.step), logged)
        raise

    final = scoring.evaluate_rows(state.params, eval_rows, model, env)
    figures = {"steps": int(state.step), "heldout_action_nll": final["action_nll"],
               f"heldout_{quality}": final[quality]}
    if config.env == "gridworld":
        # The best any model can do without seeing the task (``analysis.bayes``); a perfect
        # imitator, sampling, would also succeed as often as the expert.
        ceiling = bayes.scores(eval_episodes, env)
        figures.update({"bayes_optimal_action_nll": ceiling["nll"],
                        "bayes_optimal_action_accuracy": ceiling["accuracy"]})
    plots.plot_curves(writer.read(), ["loss", "heldout_action_nll"], [quality, f"heldout_{quality}"],
                      os.path.join(run_dir.plots_dir, "pretrain_curves.png"),
                      title=f"pretraining ({model.num_layers} layers, d={model.d_model})",
                      references=bayes_reference(figures))
    roll = rollout.rollout(jax.random.fold_in(seed_key, ROLLOUT_TAG), state.params, model, env,
                           config.pretrain.rollout_episodes)
    greedy = rollout.rollout(jax.random.fold_in(seed_key, ROLLOUT_TAG), state.params, model, env,
                             config.pretrain.rollout_episodes, greedy=True)
    figures.update({
        "rollout_success": float(np.mean(roll.success)),
        "rollout_first_subgoal_rate": float(np.mean(
            roll.progress >= family.colours_per_subgoal(env))),
        "rollout_colour_success": rollout.colour_success(roll),
        "rollout_success_greedy": float(np.mean(greedy.success)),
        "expert_success": float(np.mean(eval_episodes.success)),
        "rollout_episodes": config.pretrain.rollout_episodes,
    })
    return figures
