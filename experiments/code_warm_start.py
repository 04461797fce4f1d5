"""Are codes that name subgoals a stable point of the metacontroller's objective on a finished run?

The main job's metacontroller switches at the subgoal changes but its codes do not name subgoals.
Either the objective (action NLL + α KL) prefers other codes on this base, or training from a
random start never finds the subgoal codes. This experiment starts training *at* the subgoal
codes and lets the objective decide:

- **anchored** (``--anchor_steps``): a fresh metacontroller (the phase's initialisation and
  config) trains on its objective plus two anchors read from the ground-truth subgoal labels, which
  the method never sees: at each segment's first step (an episode's start or a subgoal change) μ_t
  is pulled to a fixed code c_g = ``--code_scale`` · one-hot(g) in the first 4 of the n_z
  dimensions (weight ``--anchor_mu``), and β_t to 1 there and to 0 at every other step (binary
  cross-entropy, weight ``--anchor_beta``). One anchor alone asks which of the two training misses:
  the gate alone (``--anchor_mu=0``), do the codes then name subgoals by themselves? With both
  anchors 0 and ``--kl_floor`` > 0 the first steps are a label-free start instead (free bits).
- **free** (``--free_steps``): the anchors are dropped and the same state trains on the objective
  alone, as the phase would. Scored every ``--eval_every`` steps.

Each score, on held-out episodes: NLL, KL per step and the objective NLL + α KL (the number
training lowers), switch F1 and switches per episode, the subgoal read from z_t (linear probe), a
pair reached under its own code / another pair's (``latent_codes.reach_rates``); beside them the
run's own metacontroller at the same α (trained from its random start by the phase).

Read: if the anchored codes reach a lower objective than the run's metacontroller and stay named
through the free steps, the objective prefers codes that name subgoals and the random start misses
them (an optimisation problem); if the objective is higher, or the codes stop naming subgoals once
free, this base does not pay for them (the base's problem). No file of the run is changed.

    python -m experiments.code_warm_start runs/gridworld_cpu --alpha=0.3 \\
        --out=experiments/results/gridworld_cpu_code_warm_start.json
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import tempfile
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np

from hrl_internal.analysis import latent_codes, switching
from hrl_internal.training import metacontroller as meta_training
from hrl_internal.training.losses import masked_mean
from launch import artefacts, report
from launch.phases import metacontroller as meta_phase
from launch.rundir import RunDir

VARIANT = "standard"


def segment_starts(rows) -> jax.Array:
    """``[..., T]`` bool: ``switching.segment_starts`` of packed rows."""
    return switching.segment_starts(jnp.asarray(rows.subgoals), jnp.asarray(rows.segments))


def subgoal_code_rate(rows) -> float:
    """The least KL per step (nats) of codes that name each segment's subgoal: the mean KL to a
    fixed prior is at least the codes' information about the subgoal, H(g) at each segment start,
    and nothing elsewhere (the encoder may sit on the prior where β shuts)."""
    mask = np.asarray(rows.mask, bool)
    starts = np.asarray(segment_starts(rows)) & mask
    counts = np.bincount(np.asarray(rows.subgoals)[starts], minlength=latent_codes.NUM_SUBGOALS)
    p = counts[counts > 0] / counts.sum()
    return float(starts.sum() / mask.sum() * -(p * np.log(p)).sum())


def subgoal_codes(latent_dim: int, scale: float) -> jax.Array:
    """``[num_subgoals, n_z]``: c_g = scale · one-hot(g)."""
    return scale * jnp.eye(latent_codes.NUM_SUBGOALS, latent_dim)


def anchored_loss(params, base, rows, key, *, model, meta, env, layer, alpha, codes, anchor,
                  kl_floor=0.0, noise_scale=1.0, forget="none", hardness=1.0):
    """The objective NLL + α KL, plus ``anchor[0]`` · |μ_t - c_g|² at segment starts and
    ``anchor[1]`` · the BCE of β against the segment starts; ``anchor`` (0, 0) and ``kl_floor`` 0
    is the phase's loss exactly. ``kl_floor`` > 0 charges α · max(KL, floor) for the batch's mean
    KL per step ("free bits", Kingma et al. 2016): codes carry up to that rate at no cost, a
    label-free way off the prior."""
    out = meta_training.forward_rows(params, base, rows, key, model=model, meta=meta, env=env,
                                     layer=layer, noise_scale=noise_scale, forget=forget,
                                     hardness=hardness)
    metrics = meta_training.metrics_of(out, rows, alpha)
    mask = rows.mask.astype(jnp.float32)
    starts = segment_starts(rows).astype(jnp.float32)
    mu_err = jnp.sum((out.codes.mu - codes[rows.subgoals]) ** 2, axis=-1)
    beta = jnp.clip(out.codes.beta, 1e-6, 1 - 1e-6)
    bce = -(starts * jnp.log(beta) + (1 - starts) * jnp.log1p(-beta))
    metrics["anchor_mu"] = masked_mean(mu_err, mask * starts)
    metrics["anchor_beta"] = masked_mean(bce, mask)
    rate = jnp.maximum(metrics["kl"], kl_floor)
    loss = (metrics["action_nll"] + alpha * rate + anchor[0] * metrics["anchor_mu"]
            + anchor[1] * metrics["anchor_beta"])
    return loss, metrics


def evaluate(config, params, base, rows, episodes, alpha) -> dict:
    figures, beta, z = meta_phase.score(config, params, base, rows, VARIANT, alpha)
    with tempfile.TemporaryDirectory() as plots:
        checks = meta_phase.latent_code_check(config, params, base, rows, z, beta, episodes,
                                              VARIANT, plots)
    return {"nll": figures["action_nll"], "kl": figures["kl"],
            "objective": figures["action_nll"] + alpha * figures["kl"],
            "hard_beta_nll": figures["hard_beta_nll"], "switch_f1": figures["f1"],
            "switches_per_episode": figures["switches_per_episode"],
            "probe_accuracy": checks["probe_accuracy"],
            "probe_knn_accuracy": checks["probe_knn_accuracy"],
            "reach_own": checks["reach_matched_rate"],
            "reach_other": checks["reach_mismatched_rate"],
            "reach_prior": checks["reach_prior_rate"],
            "replay_inferred_success": checks["replay_inferred_success"],
            "replay_same_task_success": checks["replay_same_task_success"]}


def scale_edit(params, factor: float):
    """``params`` (any tree holding the metacontroller's) with the decoder's B factor, and so every
    edit U(z) e, multiplied by ``factor``."""
    def in_b_factor(path) -> bool:
        keys = [getattr(k, "key", None) for k in path]
        return "decoder" in keys and keys[-2] == "b"
    return jax.tree_util.tree_map_with_path(
        lambda path, x: x * factor if in_b_factor(path) else x, params)


def with_decoder(state, decoder):
    """``state`` (a fresh ``MetaState``) with the metacontroller's decoder replaced by ``decoder``
    (another metacontroller's ``params["meta"]["decoder"]``); encoder, gate, history and the
    optimiser's moments stay as they are: which half the random start lacks."""
    params = jax.tree.map(lambda x: x, state.params)
    chex.assert_trees_all_equal_shapes(params["meta"]["decoder"], decoder)
    params["meta"]["decoder"] = jax.tree.map(jnp.asarray, decoder)
    return state._replace(params=params)


def with_decoder_of(state, path: str, alpha: float):
    """``with_decoder`` from the α metacontroller of the run at ``path``."""
    _, other = report.load_run(path)
    if other is None:
        raise SystemExit(f"code_warm_start: --decoder_from: {path} holds no run (config.json)")
    params = artefacts.load_metacontroller(RunDir(path), other, VARIANT, alpha)
    return with_decoder(state, params["meta"]["decoder"])


def _line(name: str, f: dict) -> str:
    return (f"[code_warm_start] {name}: objective {f['objective']:.4f} (nll {f['nll']:.4f}, "
            f"kl {f['kl']:.3f}), switch F1 {f['switch_f1']:.2f}, switches/ep "
            f"{f['switches_per_episode']:.2f}, z probe {f['probe_accuracy']:.3f}, pair reached "
            f"own/other code {f['reach_own']:.3f}/{f['reach_other']:.3f}")


def code_warm_start(path: str, alpha: float | None, anchor_steps: int, free_steps: int,
                    eval_every: int, code_scale: float, anchor_mu: float = 1.0,
                    anchor_beta: float = 1.0, kl_floor: float = 0.0, edit_init: float = 1.0,
                    save: str | None = None, decoder_from: str | None = None) -> dict:
    results, config = report.load_run(path)
    if config is None or config.env != "gridworld":
        raise SystemExit(f"code_warm_start: {path} holds no gridworld run (config.json)")
    alpha = config.meta.alphas()[0] if alpha is None else alpha
    if alpha not in config.meta.alphas():
        raise SystemExit(f"code_warm_start: --alpha must be one the run trained "
                         f"({config.meta.alpha}), got {alpha}")
    if save is not None and (os.path.realpath(save) == os.path.realpath(path)
                             or not os.path.isdir(os.path.join(save, "metacontroller"))):
        raise SystemExit(f"code_warm_start: --save must be another run directory with a "
                         f"metacontroller phase (a copy: experiments.copy_run), got {save!r}")
    for flag, value in (("--anchor_steps", anchor_steps), ("--free_steps", free_steps),
                        ("--eval_every", eval_every)):
        if value <= 0:
            raise SystemExit(f"code_warm_start: {flag} must be a positive int, got {value}")
    for flag, value in (("--anchor_mu", anchor_mu), ("--anchor_beta", anchor_beta),
                        ("--kl_floor", kl_floor), ("--edit_init", edit_init)):
        if value < 0:
            raise SystemExit(f"code_warm_start: {flag} must be >= 0, got {value}")
    run_dir = RunDir(path)
    env, model = artefacts.env_and_model(config)
    m = config.meta
    module = meta_training.module_config(m.module(model.d_model), m.hyper(alpha, VARIANT))
    # Full α from the first step: the anchors, not a warm-up, keep the codes from collapsing.
    hyper = dataclasses.replace(m.hyper(alpha, VARIANT), alpha_warmup=0)
    base = artefacts.load_params(run_dir, config)
    train_rows = jax.tree.map(jnp.asarray, artefacts.pack(
        artefacts.load_split(run_dir, config, "train"), env))
    episodes = artefacts.load_split(run_dir, config, "eval")
    rows = artefacts.pack(episodes, env)
    codes = subgoal_codes(m.latent_dim, code_scale)
    step = functools.partial(meta_training.train_steps, model=model, meta=module, env=env,
                             layer=m.layer, hyper=hyper, loss=anchored_loss)
    key = jax.random.fold_in(meta_phase.meta_key(config), meta_phase.BATCH_TAG)
    anchor = jnp.asarray([anchor_mu, anchor_beta], jnp.float32)
    out = {"path": path, "alpha": alpha, "layer": m.layer, "code_scale": code_scale,
           "anchor_mu": anchor_mu, "anchor_beta": anchor_beta, "kl_floor": kl_floor,
           "edit_init": edit_init, "anchor_steps": anchor_steps, "free_steps": free_steps}
    # The reference: an ideal subgoal code buys the NLL of the ground-truth-switched supervised
    # controllers at this layer (held out) and pays at least ``subgoal_code_rate`` nats per step.
    steer = results.get("steer", {})
    rate = subgoal_code_rate(rows)
    out["subgoal_code_min_kl"] = rate
    if "heldout_steered_action_nll_by_layer" in steer:
        steered = steer["heldout_steered_action_nll_by_layer"][m.layer]
        out["ideal_subgoal_code"] = {"nll": steered, "kl": rate,
                                     "objective": steered + alpha * rate}
        print(f"[code_warm_start] an ideal subgoal code (reference): objective "
              f"{steered + alpha * rate:.4f} (the supervised controllers' nll {steered:.4f}, kl "
              f"at least {rate:.3f} per step)")

    own = artefacts.load_metacontroller(run_dir, config, VARIANT, alpha)
    out["run_metacontroller"] = evaluate(config, own, base, rows, episodes, alpha)
    print(_line("the run's metacontroller", out["run_metacontroller"]), flush=True)

    state = meta_phase.template(config, VARIANT, alpha)
    if decoder_from is not None:
        state = with_decoder_of(state, decoder_from, alpha)
        out["decoder_from"] = decoder_from
        print(f"[code_warm_start] the decoder starts as {decoder_from}'s (the rest fresh)")
    # The decoder's B factor scales the initial edit |U e| / |e| (0.02) and with it how much the
    # NLL's gradient reaches the codes; Adam's moments are still zero, so nothing else changes.
    state = state._replace(params=scale_edit(state.params, edit_init))
    t0 = time.time()
    chunk = config.pretrain.steps_per_call
    done = 0
    while done < anchor_steps:
        num = min(chunk, anchor_steps - done)
        state, metrics = step(state, base, train_rows, key,
                              {"codes": codes, "anchor": anchor, "kl_floor": kl_floor},
                              num_steps=num)
        done += num
        print(f"[code_warm_start] anchored {done}/{anchor_steps}: nll "
              f"{float(metrics['action_nll']):.3f} kl {float(metrics['kl']):.3f} anchor μ "
              f"{float(metrics['anchor_mu']):.3f} β {float(metrics['anchor_beta']):.3f} "
              f"({time.time() - t0:.0f} s)", flush=True)
    out["anchored"] = evaluate(config, state.params, base, rows, episodes, alpha)
    print(_line("anchored", out["anchored"]), flush=True)

    out["free"] = []
    done = 0
    while done < free_steps:
        num = min(eval_every, free_steps - done)
        state, metrics = step(state, base, train_rows, key,
                              {"codes": codes, "anchor": jnp.zeros(2), "kl_floor": 0.0},
                              num_steps=num)
        done += num
        figures = {"free_steps": done, **evaluate(config, state.params, base, rows, episodes,
                                                  alpha)}
        out["free"].append(figures)
        print(_line(f"free {done}", figures) + f" ({time.time() - t0:.0f} s)", flush=True)
    out["seconds"] = time.time() - t0
    if save:
        # Another run directory's metacontroller becomes this one (its latest checkpoint), so
        # ``launch.main --workdir=SAVE --phases=internal_rl`` runs RL over these codes.
        ckpt = artefacts.meta_checkpointer(RunDir(save), VARIANT, alpha)
        ckpt.save(int(state.step), state)
        ckpt.close()
        out["saved_to"] = save
        print(f"[code_warm_start] saved as the α {alpha:g} metacontroller of {save} "
              f"(step {int(state.step)})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path")
    parser.add_argument("--alpha", type=float, default=None,
                        help="the KL weight (one the run trained; default its first)")
    parser.add_argument("--anchor_steps", type=int, default=700)
    parser.add_argument("--free_steps", type=int, default=1400)
    parser.add_argument("--eval_every", type=int, default=350)
    parser.add_argument("--code_scale", type=float, default=1.5,
                        help="|c_g|, the anchored code of subgoal g")
    parser.add_argument("--anchor_mu", type=float, default=1.0,
                        help="weight of the code anchor (0: the codes are free from the start)")
    parser.add_argument("--anchor_beta", type=float, default=1.0,
                        help="weight of the gate anchor (0: the gate is free from the start)")
    parser.add_argument("--kl_floor", type=float, default=0.0,
                        help="in the anchored steps, charge α max(KL, floor) (free bits); with "
                             "both anchors 0, a label-free start")
    parser.add_argument("--save", default=None,
                        help="a copy of the run (experiments.copy_run) whose metacontroller the "
                             "final state replaces, for internal RL over these codes")
    parser.add_argument("--edit_init", type=float, default=1.0,
                        help="multiply the decoder's initial edit (|U e| / |e| = 0.02) by this")
    parser.add_argument("--decoder_from", default=None,
                        help="start the decoder as this run's α metacontroller's (e.g. one saved "
                             "by --save), the encoder, gate and history fresh; with both anchors "
                             "0, a check of whether the random start lacks the decoder or the "
                             "encoder")
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    figures = code_warm_start(args.path, args.alpha, args.anchor_steps, args.free_steps,
                              args.eval_every, args.code_scale, args.anchor_mu,
                              args.anchor_beta, args.kl_floor, args.edit_init, args.save,
                              args.decoder_from)
    print(json.dumps(figures, indent=1))
    if args.out:
        json.dump(figures, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
