"""Phase ``steer``: supervised subgoal controllers at each layer, scored on the post-training task
with ground-truth switching (§C.3)."""
from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import configs
from hrl_internal.analysis import plots, rollout, steering
from hrl_internal.data import packing
from hrl_internal.utils.metrics import MetricsWriter
from hrl_internal.utils.progress import Progress
from launch.phases import pretrain as pretrain_phase
from launch.rundir import RunDir

TRAIN_TAG, EVAL_TAG = 31, 32


def run(config: configs.Config, run_dir: RunDir) -> dict[str, Any]:
    env = config.gridworld.env_params("pretrain")
    post = config.gridworld.env_params("posttrain")
    model = config.model.transformer(env)
    a = config.analysis
    base = pretrain_phase.load_params(run_dir, config)
    rows = jax.tree.map(jnp.asarray,
                        packing.pack(pretrain_phase.load_split(run_dir, config, "train"), env))
    key = jax.random.PRNGKey(config.seed)
    eval_key = jax.random.fold_in(key, EVAL_TAG)
    unsteered = rollout.rollout(eval_key, base, model, post, a.steer_episodes)
    layers = a.layers(model.num_layers)
    success, progress_frac, final_loss, initial_loss, curves = [], [], [], [], []
    colour, pre_success, pre_colour = [], [], []
    task_len = len(post.tasks[0])
    progress = Progress("steer", len(layers), unit="layers", every_s=0)
    for i, layer in enumerate(layers):
        controllers, losses = steering.train(
            jax.random.fold_in(jax.random.fold_in(key, TRAIN_TAG), layer), base, rows,
            model=model, env=env, layer=layer, rank=a.steer_rank, steps=a.steer_steps,
            batch_size=a.steer_batch_size, learning_rate=a.steer_lr)
        steered = steering.steered_rollout(eval_key, base, controllers, model, post, layer,
                                           a.steer_episodes)
        # The same controllers on the pretraining tasks: how well the model reaches the colours
        # it is sent to where every transition was seen in training.
        pre = steering.steered_rollout(eval_key, base, controllers, model, env, layer,
                                       a.steer_episodes)
        success.append(float(np.mean(steered.success)))
        colour.append(rollout.colour_success(steered))
        pre_success.append(float(np.mean(pre.success)))
        pre_colour.append(rollout.colour_success(pre))
        progress_frac.append(float(np.mean(steered.progress)) / task_len)
        final_loss.append(float(np.mean(losses[-max(1, len(losses) // 10):])))
        curves.append([float(x) for x in np.asarray(losses)])
        initial_loss.append(float(losses[0]))  # controllers start as the identity
        progress.update(i + 1, layer=layer, steered_nll=final_loss[-1], success=success[-1],
                        colour_success=colour[-1], pretrain_success=pre_success[-1])
    plots.plot_by_layer({"success": success, "fraction of the task's colours visited": progress_frac,
                         "colours reached per colour attempted": colour,
                         "pretraining tasks: success": pre_success},
                        os.path.join(run_dir.plots_dir, "steer_success_by_layer.png"),
                        "rate",
                        "supervised subgoal controllers at layer l (post-training task unless "
                        "named)",
                        reference={"unsteered base model": float(np.mean(unsteered.success))},
                        layers=layers)
    # The controllers' training curves, one column per layer (the phase reruns whole: start anew).
    writer = MetricsWriter(os.path.join(run_dir.phase_dir("steer"), "metrics.jsonl"),
                           truncate_after=-1)
    for step in range(a.steer_steps):
        writer.write(step + 1, {f"loss_layer{l}": curves[i][step] for i, l in enumerate(layers)})
    return {"layers": layers, "posttrain_success_by_layer": success,
            "colour_success_by_layer": colour, "pretrain_success_by_layer": pre_success,
            "pretrain_colour_success_by_layer": pre_colour,
            "posttrain_task_fraction_by_layer": progress_frac,
            "steered_action_nll_by_layer": final_loss,
            "unsteered_action_nll_by_layer": initial_loss,
            "unsteered_posttrain_success": float(np.mean(unsteered.success)),
            "unsteered_posttrain_task_fraction": float(np.mean(unsteered.progress)) / task_len,
            "episodes": a.steer_episodes}
