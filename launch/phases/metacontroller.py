"""Phase ``metacontroller``: unsupervised temporal abstractions on the frozen base model (§D.2).

Trains one metacontroller per (variant, α) of ``--metacontroller_variant`` × ``--alpha``, each
checkpointed under ``DIR/metacontroller/<variant>_a<α>/`` and resumed on a rerun; then scores every
one on held-out episodes (NLL, KL, switch F1 against subgoal boundaries) and plots β over time and
the rate–distortion curve. The first variant at the first α is the main one (phase 3 uses it).
"""
from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import configs
from hrl_internal.analysis import plots, switching
from hrl_internal.data import packing
from hrl_internal.training import metacontroller as meta_training
from hrl_internal.training.checkpoint import Checkpointer
from hrl_internal.utils.metrics import MetricsWriter
from hrl_internal.utils.progress import Progress
from launch.phases import pretrain as pretrain_phase
from launch.rundir import RunDir

INIT_TAG, BATCH_TAG = 41, 42
PLOTTED_EPISODES = 5


def run_name(variant: str, alpha: float) -> str:
    return f"{variant}_a{alpha:g}"


def checkpointer(run_dir: RunDir, variant: str, alpha: float) -> Checkpointer:
    return Checkpointer(os.path.join(run_dir.phase_dir("metacontroller"),
                                     run_name(variant, alpha), "checkpoints"))


def template(config: configs.Config, variant: str, alpha: float) -> meta_training.MetaState:
    env = config.gridworld.env_params("pretrain")
    model = config.model.transformer(env)
    return meta_training.init_state(
        jax.random.fold_in(jax.random.PRNGKey(config.seed), INIT_TAG),
        config.meta.module(model.d_model), model, config.meta.hyper(alpha, variant))


def load(run_dir: RunDir, config: configs.Config, variant: str | None = None,
         alpha: float | None = None) -> Any:
    """A trained metacontroller's params (``{"meta": ..., ["base": ...]}``); default: the main one."""
    variant = variant or config.meta.variants()[0]
    alpha = config.meta.alphas()[0] if alpha is None else alpha
    return checkpointer(run_dir, variant, alpha).restore(template(config, variant, alpha)).params


def train_one(config: configs.Config, run_dir: RunDir, base: Any, rows: packing.PackedRows,
              variant: str, alpha: float) -> meta_training.MetaState:
    env = config.gridworld.env_params("pretrain")
    model = config.model.transformer(env)
    m, p = config.meta, config.pretrain
    hyper = m.hyper(alpha, variant)
    module = m.module(model.d_model)
    ckpt = checkpointer(run_dir, variant, alpha)
    state, resumed = ckpt.restore_or(template(config, variant, alpha))
    start = int(state.step)
    name = run_name(variant, alpha)
    if resumed:
        print(f"[metacontroller/{name}] resuming from step {start}")
    writer = MetricsWriter(os.path.join(run_dir.phase_dir("metacontroller"), name,
                                        "metrics.jsonl"), truncate_after=start)
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), BATCH_TAG)
    progress = Progress(f"metacontroller/{name}", m.meta_steps, unit="steps", start=start)
    try:
        while int(state.step) < m.meta_steps:
            num = min(p.steps_per_call, m.meta_steps - int(state.step))
            state, metrics = meta_training.train_steps(
                state, base, rows, key, model=model, meta=module, env=env, layer=m.layer,
                hyper=hyper, num_steps=num)
            step = int(state.step)
            line = {k: float(v) for k, v in metrics.items()}
            writer.write(step, line)
            progress.update(step, nll=line["action_nll"], kl=line["kl"],
                            beta=line["beta_mean"])
            if step % p.checkpoint_every == 0 or step == m.meta_steps:
                ckpt.save(step, state)
    except KeyboardInterrupt:
        ckpt.save(int(state.step), state)
        raise
    return state


def score(config: configs.Config, params: Any, base: Any, rows: packing.PackedRows,
          variant: str, alpha: float) -> tuple[dict[str, float], np.ndarray]:
    """Held-out NLL, KL and switching scores, and β ``[rows, T]`` for plotting."""
    env = config.gridworld.env_params("pretrain")
    model = config.model.transformer(env)
    m = config.meta

    def evaluate_chunk(part):
        metrics, out = meta_training.evaluate(
            params, base, part, model=model, meta=m.module(model.d_model), env=env,
            layer=m.layer, hyper=m.hyper(alpha, variant))
        return metrics, np.asarray(out.codes.beta)

    figures, betas = pretrain_phase.evaluate_in_chunks(
        evaluate_chunk, rows, ("action_nll", "kl", "action_accuracy"))
    beta = np.concatenate(betas)[:rows.num_rows]
    figures.update(switching.switch_scores(beta, rows.subgoals, rows.segments, rows.mask,
                                           threshold=m.beta_threshold,
                                           tolerance=m.switch_tolerance))
    return figures, beta


def _episode_views(rows: packing.PackedRows, beta: np.ndarray, count: int):
    """The first ``count`` episodes that start a row, cut out of their rows: ``[count, T]``."""
    t = rows.actions.shape[1]
    out = {"beta": np.zeros((count, t)), "subgoals": np.zeros((count, t), int),
           "mask": np.zeros((count, t), bool)}
    for i in range(min(count, rows.num_rows)):
        keep = np.asarray(rows.mask[i]) & (np.asarray(rows.segments[i]) == 0)
        n = int(keep.sum())
        out["beta"][i, :n] = beta[i, :n]
        out["subgoals"][i, :n] = np.asarray(rows.subgoals[i, :n])
        out["mask"][i, :n] = True
    return out


def run(config: configs.Config, run_dir: RunDir) -> dict[str, Any]:
    env = config.gridworld.env_params("pretrain")
    m = config.meta
    base = pretrain_phase.load_params(run_dir, config)
    train_rows = jax.tree.map(jnp.asarray, packing.pack(
        pretrain_phase.load_split(run_dir, config, "train"), env))
    eval_rows = packing.pack(pretrain_phase.load_split(run_dir, config, "eval"), env)
    sweep = []
    main = None
    for variant in m.variants():
        for alpha in m.alphas():
            state = train_one(config, run_dir, base, train_rows, variant, alpha)
            figures, beta = score(config, state.params, base, eval_rows, variant, alpha)
            point = {"variant": variant, "alpha": alpha, "nll": figures["action_nll"],
                     "kl": figures["kl"], "switch_f1": figures["f1"],
                     "switches_per_episode": figures["switches_per_episode"]}
            sweep.append(point)
            print(f"[metacontroller/{run_name(variant, alpha)}] held-out nll {point['nll']:.4f} "
                  f"kl {point['kl']:.3f} switch F1 {point['switch_f1']:.3f} "
                  f"switches/episode {point['switches_per_episode']:.2f} "
                  f"(true {figures['true_switches_per_episode']:.2f})")
            views = _episode_views(eval_rows, beta, PLOTTED_EPISODES)
            plots.plot_switching(
                views["beta"], views["subgoals"], views["mask"],
                os.path.join(run_dir.plots_dir, f"beta_{run_name(variant, alpha)}.png"),
                title=f"switching gate β, {variant}, α={alpha:g} (held-out episodes)",
                threshold=m.beta_threshold)
            if main is None:
                main = figures
    plots.plot_rate_distortion(sweep, os.path.join(run_dir.plots_dir, "rate_distortion.png"))
    return {"variant": m.variants()[0], "alpha": m.alphas()[0], "layer": m.layer,
            "nll": main["action_nll"], "kl": main["kl"],
            "action_accuracy": main["action_accuracy"], "switch_f1": main["f1"],
            "switch_precision": main["precision"], "switch_recall": main["recall"],
            "switches_per_episode": main["switches_per_episode"],
            "true_switches_per_episode": main["true_switches_per_episode"],
            "beta_binary_fraction": main["beta_binary_fraction"], "sweep": sweep}
