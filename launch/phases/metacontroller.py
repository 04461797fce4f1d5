"""Phase ``metacontroller``: unsupervised temporal abstractions on the frozen base model (§D.2).

Trains one metacontroller per (variant, α) of ``--metacontroller_variant`` × ``--alpha``, each
checkpointed under ``DIR/metacontroller/<variant>_a<α>/`` and resumed on a rerun; then scores every
one on held-out episodes (NLL, KL, switch F1 against subgoal boundaries) and plots β over time and
the rate–distortion curve. The first variant at the first α is the main one (phase 3 uses it).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import configs
from hrl_internal.analysis import bayes, latent_codes, plots, switching
from hrl_internal.data import packing
from hrl_internal.rl import internal_env, internal_rl, policy
from hrl_internal.training import metacontroller as meta_training
from hrl_internal.training import guards
from hrl_internal.utils import sharding
from hrl_internal.utils.metrics import MetricsWriter
from hrl_internal.utils.progress import Progress
from launch import artefacts, scoring
from launch.rundir import RunDir

INIT_TAG, BATCH_TAG, CODE_TAG, REPLAY_TAG = 41, 42, 43, 44
REPLAYED_EPISODES = 256
MAX_CODES = 16  # codes per replayed episode (the last repeats at further switches)
LATENT_CHECK_TICKS = 50  # ticks per slot starting episodes, per code and task
PLOTTED_EPISODES = 5


def meta_key(config: configs.Config) -> jax.Array:
    """The root key of everything random in this phase: ``--meta_seed``, or the run's seed."""
    return jax.random.PRNGKey(config.meta.seed(config.seed))


def template(config: configs.Config, variant: str, alpha: float, base: Any = None
             ) -> meta_training.MetaState:
    """The fresh state this phase trains from (the compile variant's encoder copied from the
    pretrained ``base``)."""
    return artefacts.meta_template(config, variant, alpha,
                                   jax.random.fold_in(meta_key(config), INIT_TAG), base)


def train_one(config: configs.Config, run_dir: RunDir, base: Any, rows: Any,
              variant: str, alpha: float) -> meta_training.MetaState:
    env, model = artefacts.env_and_model(config)
    m, p = config.meta, config.pretrain
    hyper = m.hyper(alpha, variant, config.skip_nonfinite)
    module = m.module(model.d_model)
    ckpt = artefacts.meta_checkpointer(run_dir, variant, alpha)
    state, resumed = ckpt.restore_or(template(config, variant, alpha, base))
    start = int(state.step)
    name = artefacts.meta_run_name(variant, alpha)
    if resumed:
        print(f"[metacontroller/{name}] resuming from step {start}")
    elif module.edit_centre and variant in ("standard", "forced_switch"):
        # The edit's centre: the acted stream's mean over (up to) 256 training rows, once; the
        # checkpoint keeps it, so a resumed run reads the same one.
        sample = jax.tree.map(lambda x: x[:256], rows)
        state = meta_training.with_edit_centre(state, meta_training.edit_centre(
            base, sample, model=model, env=env, layer=m.layer, forget=hyper.forget))
    writer = MetricsWriter(os.path.join(run_dir.phase_dir("metacontroller"), name,
                                        "metrics.jsonl"), truncate_after=start)
    key = jax.random.fold_in(meta_key(config), BATCH_TAG)
    progress = Progress(f"metacontroller/{name}", m.meta_steps, unit="steps", start=start)
    logged = state
    try:
        while int(state.step) < m.meta_steps:
            num = min(p.steps_per_call, m.meta_steps - int(state.step))
            state, metrics = meta_training.train_steps(
                state, base, rows, key, model=model, meta=module, env=env, layer=m.layer,
                hyper=hyper, num_steps=num)
            guards.check(metrics, f"metacontroller/{name}", config.on_nonfinite)
            step = int(state.step)
            line = {k: float(v) for k, v in metrics.items() if k != "first_nonfinite_step"}
            writer.write(step, line)
            progress.update(step, nll=line["action_nll"], kl=line["kl"],
                            beta=line["beta_mean"])
            logged = state
            if step % p.checkpoint_every == 0 or step == m.meta_steps:
                ckpt.save(step, state)
    except KeyboardInterrupt:
        ckpt.save(int(logged.step), logged)  # the last state whose metrics line is written
        raise
    return state


def score(config: configs.Config, params: Any, base: Any, rows: Any,
          variant: str, alpha: float) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Held-out NLL, KL and switching scores, β ``[rows, T]`` and codes ``[rows, T, n_z]``."""
    env, model = artefacts.env_and_model(config)
    m = config.meta

    def evaluate_chunk(part):
        metrics, out = meta_training.evaluate(
            params, base, part, model=model, meta=m.module(model.d_model), env=env,
            layer=m.layer, hyper=m.hyper(alpha, variant))
        return metrics, sharding.to_numpy((out.codes.beta, out.codes.z))

    figures, outs = scoring.evaluate_in_chunks(
        evaluate_chunk, rows, ("action_nll", "kl", scoring.quality_key(model)))
    beta = np.concatenate([b for b, _ in outs])[:rows.num_rows]
    z = np.concatenate([c for _, c in outs])[:rows.num_rows]
    figures.update(switching.switch_scores(beta, rows.subgoals, rows.segments, rows.mask,
                                           threshold=m.beta_threshold,
                                           tolerance=m.switch_tolerance))

    # The same episodes as internal RL will use the codes: a switch iff β >= threshold, the code
    # held exactly in between. Near the soft NLL only if the gate is (nearly) binary.
    def evaluate_hard(part):
        metrics, _ = meta_training.evaluate(
            params, base, part, model=model, meta=m.module(model.d_model), env=env,
            layer=m.layer, hyper=m.hyper(alpha, variant), hard_beta_threshold=m.beta_threshold)
        return metrics, None

    hard, _ = scoring.evaluate_in_chunks(
        evaluate_hard, rows, ("action_nll", scoring.quality_key(model)))
    figures["hard_beta_nll"] = hard["action_nll"]
    figures["hard_beta_" + scoring.quality_key(model)] = hard[
        scoring.quality_key(model)]
    return figures, beta, z


def sweep_point(variant: str, alpha: float, figures: dict[str, float]) -> dict[str, Any]:
    """One rate-distortion point of the phase's ``sweep`` from ``score``'s figures."""
    return {"variant": variant, "alpha": alpha, "nll": figures["action_nll"],
            "hard_beta_nll": figures["hard_beta_nll"], "kl": figures["kl"],
            "switch_f1": figures["f1"], "switches_per_episode": figures["switches_per_episode"]}


def _episode_views(rows: Any, beta: np.ndarray, count: int):
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
    env, model = artefacts.env_and_model(config)
    quality = scoring.quality_key(model)
    m = config.meta
    base = artefacts.load_params(run_dir, config)
    train_rows = jax.tree.map(jnp.asarray, artefacts.pack(
        artefacts.load_split(run_dir, config, "train"), env))
    eval_episodes = artefacts.load_split(run_dir, config, "eval")
    eval_rows = artefacts.pack(eval_episodes, env)
    sweep = []
    main = None
    for variant in m.variants():
        for alpha in m.alphas(variant):
            state = train_one(config, run_dir, base, train_rows, variant, alpha)
            figures, beta, z = score(config, state.params, base, eval_rows, variant, alpha)
            point = sweep_point(variant, alpha, figures)
            sweep.append(point)
            print(f"[metacontroller/{artefacts.meta_run_name(variant, alpha)}] held-out nll {point['nll']:.4f} "
                  f"(hard β {point['hard_beta_nll']:.4f}) "
                  f"kl {point['kl']:.3f} switch F1 {point['switch_f1']:.3f} "
                  f"switches/episode {point['switches_per_episode']:.2f} "
                  f"(true {figures['true_switches_per_episode']:.2f})")
            views = _episode_views(eval_rows, beta, PLOTTED_EPISODES)
            plots.plot_switching(
                views["beta"], views["subgoals"], views["mask"],
                os.path.join(run_dir.plots_dir, f"beta_{artefacts.meta_run_name(variant, alpha)}.png"),
                title=f"switching gate β, {variant}, α={alpha:g} (held-out episodes)",
                threshold=m.beta_threshold)
            if main is None:
                main = figures
                # Injecting codes needs single-subgoal tasks and replaying expert layouts: both
                # written for the gridworld so far.
                if config.env == "gridworld":
                    main.update(latent_code_check(config, state.params, base, eval_rows, z, beta,
                                                  eval_episodes, variant, run_dir.plots_dir))
    plots.plot_rate_distortion(sweep, os.path.join(run_dir.plots_dir, "rate_distortion.png"))
    cap = {}
    if config.env == "gridworld":
        # Told the next colour but not the expert's tie-break: a metacontroller whose held-out
        # accuracy is above this is writing moves, not subgoals, into its codes.
        told = bayes.next_colour_scores(eval_episodes, env)
        cap = {"next_colour_cap_accuracy": told["accuracy"], "next_colour_cap_nll": told["nll"]}
    return {**cap, "variant": m.variants()[0], "alpha": m.alphas(m.variants()[0])[0], "layer": m.layer,
            "forget": m.meta_forget,
            "nll": main["action_nll"], "kl": main["kl"],
            quality: main[quality], "switch_f1": main["f1"],
            "switch_precision": main["precision"], "switch_recall": main["recall"],
            "switches_per_episode": main["switches_per_episode"],
            "true_switches_per_episode": main["true_switches_per_episode"],
            "beta_binary_fraction": main["beta_binary_fraction"], "sweep": sweep,
            "hard_beta_nll": main["hard_beta_nll"],
            f"hard_beta_{quality}": main[f"hard_beta_{quality}"],
            **{f"latent_code_{k}": v for k, v in main.items()
               if k.startswith(("reach_", "replay_", "probe_"))}}


def latent_code_check(config: configs.Config, params: Any, base: Any, rows: packing.PackedRows,
                      z: np.ndarray, beta: np.ndarray, episodes: Any, variant: str,
                      plots_dir: str) -> dict[str, Any]:
    """Codes collected per subgoal, injected at every switch on single-pair tasks (App. B.3.2);
    expert episodes replayed from their start with the codes inferred for them."""
    m, r = config.meta, config.rl
    env, model = artefacts.env_and_model(config)
    codes, counts = latent_codes.codes_by_subgoal(z, np.asarray(rows.subgoals),
                                                  np.asarray(rows.segments), np.asarray(rows.mask))
    meta = meta_training.module_config(m.module(model.d_model), m.hyper(0.0, variant))
    pairs = dataclasses.replace(config.gridworld.env_params("pairs"), max_steps=r.rl_max_steps)
    spec = internal_rl.InternalRLSpec(
        internal_env.InternalEnvSpec(model, meta, pairs, m.layer, m.beta_threshold,
                                     forget=m.meta_forget),
        policy.PolicyConfig(model.d_model, meta.latent_dim, width=1),
        num_slots=r.rl_slots, start_ticks=min(r.rl_start_ticks, LATENT_CHECK_TICKS),
        max_episodes=max(1, min(r.rl_start_ticks, LATENT_CHECK_TICKS) // 4))
    frozen = internal_env.Frozen(params.get("base", base), params["meta"])
    root = meta_key(config)
    code_key = jax.random.fold_in(root, CODE_TAG)
    rates = latent_codes.reach_rates(codes, frozen, spec, code_key)
    named = latent_codes.code_probe(code_key, z, np.asarray(rows.subgoals),
                                    np.asarray(rows.mask, bool))
    print(f"[metacontroller] latent codes: pair k reached under its own code "
          f"{rates['matched_rate']:.3f}, under another pair's code {rates['mismatched_rate']:.3f}, "
          f"under prior codes {rates['prior_rate']:.3f}; a linear probe reads the subgoal from "
          f"z_t {named['probe_accuracy']:.3f} of the time (majority {named['probe_majority']:.3f})")
    plots.plot_code_rates(np.asarray(rates["code_rates"]), np.asarray(rates["prior_rates"]),
                          os.path.join(plots_dir, "latent_codes.png"))
    n = min(REPLAYED_EPISODES, episodes.num_episodes)
    inferred, _ = latent_codes.switch_codes(z, beta, rows, n, m.beta_threshold, MAX_CODES)
    prior = np.asarray(jax.random.normal(root, inferred.shape))
    replay_spec = dataclasses.replace(spec.env, env=env)
    replay_key = jax.random.fold_in(root, REPLAY_TAG)
    figures = ({f"reach_{k}": v for k, v in rates.items()} | {"reach_segments": counts.tolist()}
               | named)
    partner = latent_codes.same_task_partner(np.asarray(episodes.task_id[:n]),
                                            config.meta.seed(config.seed))
    for name, codes in (("inferred", inferred), ("same_task", inferred[partner]),
                        ("prior", prior)):
        success, progress = latent_codes.replay(codes, episodes, frozen, replay_spec, replay_key)
        figures[f"replay_{name}_success"] = float(success.mean())
        figures[f"replay_{name}_progress"] = float(progress.mean())
    figures["replay_episodes"] = n
    print(f"[metacontroller] expert episodes replayed with their inferred codes: subgoal order "
          f"reproduced {figures['replay_inferred_success']:.3f} (another episode's codes of the "
          f"same task {figures['replay_same_task_success']:.3f}, prior codes "
          f"{figures['replay_prior_success']:.3f}) over {n} episodes")
    return figures
