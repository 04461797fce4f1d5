"""Phase ``steer``: supervised subgoal controllers at each layer, scored on the post-training task
with ground-truth switching (§C.3). ``--steer_forget`` (not the paper's) makes the base forget
the history before each subgoal while the controllers train and act.

Every layer's controllers train in one program (``steering.train_steps``), checkpointed like the
other training phases; then each layer is scored: held-out steered NLL against the next-colour
reference, and rollouts on the post-training and the pretraining tasks.
"""
from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import configs
from hrl_internal.analysis import bayes, plots, rollout, steering
from hrl_internal.data import packing
from hrl_internal.utils.metrics import MetricsWriter
from hrl_internal.utils.progress import Progress
from launch import artefacts
from launch.rundir import RunDir

TRAIN_TAG, EVAL_TAG = 31, 32
# Held-out packed rows scoring the steered NLL (~6 episodes each): enough for a stable mean.
HELDOUT_ROWS = 256


def train_controllers(config: configs.Config, run_dir: RunDir, base: Any, rows: Any,
                      layers: tuple[int, ...]) -> tuple[steering.SteerState, np.ndarray, float]:
    """Every layer's controllers, trained together in chunks of ``steps_per_call`` with a
    progress line each, checkpointed every ``checkpoint_every`` steps and resumed from the last
    checkpoint on a rerun. Returns the state, the loss ``[steps, n_layers]`` (from
    ``metrics.jsonl``, so a resumed run has the whole curve) and this call's training seconds."""
    env = config.gridworld.env_params("pretrain")
    model = config.model.transformer(env)
    a, p = config.analysis, config.pretrain
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), TRAIN_TAG)
    init_key, batch_key = jax.random.split(key)
    template = steering.init_state(init_key, model, layers, a.steer_rank, a.steer_lr)
    ckpt = artefacts.steer_checkpointer(run_dir)
    state, resumed = ckpt.restore_or(template)
    start = int(state.step)
    if resumed:
        print(f"[steer] resuming from step {start}")
    writer = MetricsWriter(os.path.join(run_dir.phase_dir("steer"), "metrics.jsonl"),
                           truncate_after=start)
    progress = Progress("steer", a.steer_steps, unit="steps", start=start)
    started = time.monotonic()
    logged = state
    try:
        while int(state.step) < a.steer_steps:
            num = min(p.steps_per_call, a.steer_steps - int(state.step))
            first = int(state.step)
            state, losses = steering.train_steps(
                state, base, rows, batch_key, model=model, env=env, layers=layers,
                batch_size=a.steer_batch_size, learning_rate=a.steer_lr, num_steps=num,
                forget=a.steer_forget)
            losses = np.asarray(losses)
            for i, step_losses in enumerate(losses):
                writer.write(first + i + 1, {f"loss_layer{l}": float(x)
                                             for l, x in zip(layers, step_losses)})
            step = int(state.step)
            progress.update(step, **{f"loss_layer{l}": float(x)
                                     for l, x in zip(layers, losses.mean(axis=0))})
            logged = state
            if step % p.checkpoint_every == 0 or step == a.steer_steps:
                ckpt.save(step, state)
    except KeyboardInterrupt:
        ckpt.save(int(logged.step), logged)  # the last state whose metrics lines are written
        raise
    curve = np.asarray([[r[f"loss_layer{l}"] for l in layers] for r in writer.read()])
    return state, curve.reshape(-1, len(layers)), time.monotonic() - started


def run(config: configs.Config, run_dir: RunDir) -> dict[str, Any]:
    env = config.gridworld.env_params("pretrain")
    post = config.gridworld.env_params("posttrain")
    model = config.model.transformer(env)
    a = config.analysis
    base = artefacts.load_params(run_dir, config)
    rows = jax.tree.map(jnp.asarray,
                        packing.pack(artefacts.load_split(run_dir, config, "train"), env))
    heldout = artefacts.load_split(run_dir, config, "eval")
    key = jax.random.PRNGKey(config.seed)
    eval_key = jax.random.fold_in(key, EVAL_TAG)
    unsteered = rollout.rollout(eval_key, base, model, post, a.steer_episodes)
    layers = a.layers(model.num_layers)
    success, progress_frac, final_loss, initial_loss = [], [], [], []
    colour, pre_success, pre_colour, anatomy = [], [], [], []
    task_len = len(post.tasks[0])
    state, losses, train_seconds = train_controllers(config, run_dir, base, rows, tuple(layers))
    controllers = state.controllers
    # Held out: the steered NLL against the reference that is told the subgoal (the next colour)
    # but not the expert's tie-break; the controllers can at best close the gap down to it.
    heldout_rows = packing.pack(heldout, env)
    heldout_rows = jax.tree.map(lambda x: jnp.asarray(x[:HELDOUT_ROWS]), heldout_rows)
    heldout_nll = np.asarray(steering.evaluate(controllers, base, heldout_rows, model=model,
                                               env=env, layers=tuple(layers),
                                               forget=a.steer_forget))
    unsteered_nll = np.asarray(steering.evaluate(jax.tree.map(jnp.zeros_like, controllers), base,
                                                 heldout_rows, model=model, env=env,
                                                 layers=tuple(layers), forget=a.steer_forget))
    told = bayes.next_colour_scores(heldout, env)
    progress = Progress("steer/rollouts", len(layers), unit="layers", every_s=0)
    for i, layer in enumerate(layers):
        layer_ctrl = steering.layer_controllers(controllers, i)
        steered = steering.steered_rollout(eval_key, base, layer_ctrl, model, post, layer,
                                           a.steer_episodes, forget=a.steer_forget)
        # The same controllers on the pretraining tasks: how well the model reaches the colours
        # it is sent to where every transition was seen in training.
        pre = steering.steered_rollout(eval_key, base, layer_ctrl, model, env, layer,
                                       a.steer_episodes, forget=a.steer_forget)
        success.append(float(np.mean(steered.success)))
        colour.append(rollout.colour_success(steered))
        anatomy.append(rollout.failure_anatomy(steered, post.max_steps))
        pre_success.append(float(np.mean(pre.success)))
        pre_colour.append(rollout.colour_success(pre))
        progress_frac.append(float(np.mean(steered.progress)) / task_len)
        final_loss.append(float(np.mean(losses[-max(1, len(losses) // 10):, i])))
        initial_loss.append(float(losses[0, i]))  # controllers start as the identity
        progress.update(i + 1, layer=layer, heldout_steered_nll=float(heldout_nll[i]),
                        success=success[-1], colour_success=colour[-1],
                        pretrain_success=pre_success[-1])
    figures = {"layers": layers, "posttrain_success_by_layer": success,
            "colour_success_by_layer": colour, "pretrain_success_by_layer": pre_success,
            "pretrain_colour_success_by_layer": pre_colour,
            "posttrain_task_fraction_by_layer": progress_frac,
            # Where steered post-training episodes fail: at a pair's first colour (a new subgoal
            # written) or its second, and by the time limit or a wrong colour.
            **{f"{name}_by_layer": [a[name] for a in anatomy] for name in anatomy[0]},
            "steered_action_nll_by_layer": final_loss,
            "unsteered_action_nll_by_layer": initial_loss,
            "heldout_steered_action_nll_by_layer": [float(x) for x in heldout_nll],
            "heldout_unsteered_action_nll": float(unsteered_nll[0]),
            "next_colour_reference_action_nll": told["nll"],
            "next_colour_reference_action_accuracy": told["accuracy"],
            "train_seconds": train_seconds,
            "unsteered_posttrain_success": float(np.mean(unsteered.success)),
            "unsteered_posttrain_task_fraction": float(np.mean(unsteered.progress)) / task_len,
            "episodes": a.steer_episodes, "forget": a.steer_forget}
    plot(figures, run_dir.plots_dir,
         run_dir.results().get("pretrain", {}).get("bayes_optimal_action_nll"))
    return figures


def plot(figures: dict[str, Any], plots_dir: str, bayes_nll: float | None = None) -> list[str]:
    """``steer_success_by_layer.png`` (rates by layer) and, where the figures hold the held-out
    NLL, ``steer_nll_by_layer.png`` (against the unsteered model and the two Bayes references),
    from the phase's stored figures; returns the files written."""
    layers = figures["layers"]
    rates = {"success": figures["posttrain_success_by_layer"]}
    for label, name in (("fraction of the task's colours visited",
                         "posttrain_task_fraction_by_layer"),
                        ("colours reached per colour attempted", "colour_success_by_layer"),
                        ("pretraining tasks: success", "pretrain_success_by_layer")):
        if name in figures:
            rates[label] = figures[name]
    written = [os.path.join(plots_dir, "steer_success_by_layer.png")]
    plots.plot_by_layer(rates, written[-1], "rate",
                        "supervised subgoal controllers at layer l (post-training task unless "
                        "named)",
                        reference=({"unsteered base model": figures["unsteered_posttrain_success"]}
                                   if "unsteered_posttrain_success" in figures else None),
                        layers=layers)
    if "heldout_steered_action_nll_by_layer" in figures:
        reference = {"unsteered base model": figures["heldout_unsteered_action_nll"],
                     "told the next colour (expert, tie-break unknown)":
                         figures["next_colour_reference_action_nll"]}
        if bayes_nll is not None:
            reference["task hidden (Bayes-optimal)"] = bayes_nll
        written.append(os.path.join(plots_dir, "steer_nll_by_layer.png"))
        plots.plot_by_layer({"steered by the true subgoal's controller":
                             figures["heldout_steered_action_nll_by_layer"]},
                            written[-1], "held-out action NLL",
                            "held out, the true subgoal's controller at layer l",
                            reference=reference, layers=layers)
    return written
