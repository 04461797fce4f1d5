"""Phase ``internal_rl``: RL in the residual stream against RL on raw actions (§C.5, Alg. 1-3).

For every method of ``--rl_methods`` (same task, seeds, slots and number of updates) it measures
the initial policy's success over ``--rl_initial_episodes`` episodes, trains ``--rl_seeds`` seeds
at once (vmapped) with checkpoints under ``DIR/internal_rl/<method>/``, logs the learning curve to
``metrics.jsonl`` and scores the final policies. Methods: ``internal_rl`` (codes through the
standard metacontroller), ``raw_action_rl`` (the base model's own actions), ``forced_switch`` and
``cotrain`` (codes through those metacontroller variants), and ``subgoal_controllers``: the
known-answer reference, codes through the steer phase's supervised controllers at the same layer,
switched when the env's subgoal changes (``internal_env``'s ``decoder="subgoal_controllers"``);
``gt_switching``: codes through the standard metacontroller's own decoder, switched when the env's
subgoal changes (its switching unit replaced): does its code space hold a code per subgoal?
``compile``: codes through the CompILE baseline's decoder (``--metacontroller_variant=compile``),
a new code every ``--segment_rate`` steps (CompILE infers its boundaries from whole episodes and
has no causal switching unit).

``gt_steer_success`` is what the frozen model can do on the RL task at all: the success of the
ground-truth-switched supervised controllers at the RL layer (the best policy of the known-answer
method), read beside every curve. ``--rl_forget`` (not the paper's) makes the base forget the
episode's history at each switch of the code-space methods and in that ceiling.
``--codebook_size`` K (not the paper's) gives the metacontroller's code-space methods a categorical
head over K codes, the k-means centroids of the codes that metacontroller switched to on
``CODEBOOK_EPISODES`` training episodes (``hrl_internal.rl.codebook``).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax
import numpy as np

from experiments import configs
from hrl_internal.analysis import plots, rollout, steering
from hrl_internal.rl import codebook, internal_env, internal_rl, policy, raw_action, train
from hrl_internal.training import metacontroller as meta_training
from hrl_internal.training import guards
from hrl_internal.training.checkpoint import Checkpointer
from hrl_internal.utils import sharding
from hrl_internal.utils.metrics import MetricsWriter
from hrl_internal.utils.progress import Progress
from launch import artefacts
from launch.rundir import RunDir

INIT_TAG, TRAIN_TAG, INITIAL_EVAL_TAG, FINAL_EVAL_TAG, CEILING_TAG, CODEBOOK_TAG = range(51, 57)
CODEBOOK_EPISODES = 512  # training episodes whose switch codes the codebook clusters
# Which metacontroller each code-space method acts through.
VARIANT = {"internal_rl": "standard", "forced_switch": "forced_switch", "cotrain": "cotrain",
           "gt_switching": "standard", "compile": "compile"}


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    learner: str  # a key of train.LEARNERS
    spec: Any
    frozen: Any
    init_params: Callable[[jax.Array], Any]
    figures: dict[str, float] = dataclasses.field(default_factory=dict)  # e.g. the codebook's


def rl_env(config: configs.Config):
    """The RL task's environment, with the RL time limit."""
    r = config.rl
    section = config.ant if config.env == "ant" else config.gridworld
    return dataclasses.replace(section.env_params(r.rl_task), max_steps=r.rl_max_steps)


def code_policy(config: configs.Config, model: Any, meta: Any, discrete: bool = False
                ) -> policy.PolicyConfig:
    """The policy over codes ``z [meta.latent_dim]`` reading ``model``'s residual stream
    (``discrete``: codes read as ``argmax z``, whose head ``--discrete_code_head`` picks; with
    ``--codebook_size`` K and not ``discrete``: a categorical head over the K codebook entries)."""
    head, n = "gaussian", meta.latent_dim
    if discrete:
        head = config.rl.discrete_code_head
    elif config.rl.codebook_size:
        head, n = "categorical", config.rl.codebook_size
    return policy.PolicyConfig(model.d_model, n, config.rl.policy_width,
                               init_log_std=config.rl.policy_log_std,
                               block=config.rl.policy_block, head=head)


def switch_codebook(config: configs.Config, run_dir: RunDir, base: Any, trained: Any,
                    variant: str, alpha: float) -> tuple[np.ndarray, dict[str, float]]:
    """``[--codebook_size, n_z]``: k-means centroids of the codes a trained metacontroller
    switched to (each episode's first code and every code where β >= threshold, z̃ = μ under the
    hard gate) on the first ``CODEBOOK_EPISODES`` training episodes; no label is read. Beside it,
    figures: the codes clustered per episode and, on the gridworld, the centroids' purity by
    subgoal (a diagnosis: ``codebook.purity``)."""
    m = config.meta
    env, model = artefacts.env_and_model(config)
    episodes = artefacts.load_split(run_dir, config, "train")
    rows = artefacts.pack(jax.tree.map(lambda x: x[:CODEBOOK_EPISODES], episodes), env)
    _, out = meta_training.evaluate(trained, base, rows, model=model, meta=m.module(model.d_model),
                                    env=env, layer=m.layer, hyper=m.hyper(alpha, variant),
                                    hard_beta_threshold=m.beta_threshold)
    chosen = codebook.switch_mask(np.asarray(out.codes.beta), rows.episode, rows.mask,
                                  m.beta_threshold)
    # Episode by episode, each in time order: k-means++ seeds from this order.
    r, t = np.nonzero(chosen)
    order = np.argsort(np.asarray(rows.episode)[r, t], kind="stable")
    r, t = r[order], t[order]
    points = np.asarray(out.codes.z)[r, t]
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), CODEBOOK_TAG)
    book = np.asarray(codebook.kmeans(key, points, config.rl.codebook_size))
    episodes_seen = len(np.unique(np.asarray(rows.episode)[np.asarray(rows.mask, bool)]))
    figures = {"codebook_codes_per_episode": len(points) / max(episodes_seen, 1)}
    if config.env == "gridworld":
        figures["codebook_subgoal_purity"] = codebook.purity(
            points, np.asarray(rows.subgoals)[r, t], book)
    return book, figures


def method(config: configs.Config, run_dir: RunDir, name: str) -> Method:
    """The learner, its static spec and frozen params for ``name``."""
    r, m = config.rl, config.meta
    _, model = artefacts.env_and_model(config)
    base = artefacts.load_params(run_dir, config)
    slots = dict(num_slots=r.rl_slots, start_ticks=r.rl_start_ticks,
                 max_episodes=max(1, r.rl_start_ticks // 4))
    if name == "raw_action_rl":
        spec = raw_action.RawActionSpec(model, rl_env(config), **slots)
        return Method(name, "actions", spec, None, lambda key: base)
    if name == "subgoal_controllers":
        controllers = artefacts.load_controllers(run_dir, config, m.layer)
        meta = dataclasses.replace(m.module(model.d_model), latent_dim=steering.NUM_SUBGOALS)
        env_spec = internal_env.InternalEnvSpec(model, meta, rl_env(config), m.layer,
                                                decoder="subgoal_controllers",
                                                switching="ground_truth", forget=r.rl_forget)
        spec = internal_rl.InternalRLSpec(env_spec, code_policy(config, model, meta, True),
                                          **slots)
        return Method(name, "codes", spec, internal_env.Frozen(base, controllers),
                      lambda key: internal_rl.init_params(key, spec))
    variant = VARIANT[name]
    alpha = m.alphas(variant)[0]
    trained = artefacts.load_metacontroller(run_dir, config, variant, alpha)
    meta = meta_training.module_config(m.module(model.d_model), m.hyper(alpha, variant))
    env_spec = internal_env.InternalEnvSpec(
        model, meta, rl_env(config), m.layer, m.beta_threshold,
        switching="ground_truth" if name == "gt_switching" else "gate", forget=r.rl_forget)
    spec = internal_rl.InternalRLSpec(env_spec, code_policy(config, model, meta),
                                      codebook_size=r.codebook_size, **slots)
    # A co-trained metacontroller steers its own co-trained base model.
    own_base = trained.get("base", base)
    book, book_figures = (switch_codebook(config, run_dir, own_base, trained, variant, alpha)
                          if r.codebook_size else (None, {}))
    frozen = internal_env.Frozen(own_base, trained["meta"], book)
    return Method(name, "codes", spec, frozen, lambda key: internal_rl.init_params(key, spec),
                  book_figures)


def measure(meth: Method, params: Any, key: jax.Array, min_episodes: int) -> dict[str, np.ndarray]:
    """Success per seed (``params`` with a seed axis) over at least ``min_episodes`` episodes each."""
    seeds = jax.tree.leaves(params)[0].shape[0]
    params = sharding.place(params)  # initial (fresh) and trained params: one compiled program
    totals, i = None, 0
    while totals is None or totals["episodes"].min() < min_episodes:
        stats = train.evaluate(params, meth.frozen, jax.random.split(jax.random.fold_in(key, i),
                                                                     seeds),
                               learner=meth.learner, spec=meth.spec)
        stats = {k: np.asarray(v, np.float64) for k, v in stats._asdict().items()}
        totals = stats if totals is None else {k: totals[k] + stats[k] for k in stats}
        i += 1
    return totals


def _seed_states(config: configs.Config, meth: Method, hyper: train.RLHyper) -> train.RLState:
    keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(config.seed), INIT_TAG),
                            config.rl.rl_seeds)
    return jax.vmap(lambda k: train.init_state(meth.init_params(k), hyper))(keys)


def hyper_of(config: configs.Config, name: str) -> train.RLHyper:
    """Method ``name``'s learner settings: raw-action RL has its own learning rate (it fine-tunes
    the whole base model; the paper tunes each method's rate)."""
    r = config.rl
    lr = r.raw_action_lr if name == "raw_action_rl" else r.rl_lr
    return train.RLHyper(learning_rate=lr, clip=r.rl_clip, update_epochs=r.rl_update_epochs,
                         skip_nonfinite=config.skip_nonfinite)


def train_method(config: configs.Config, run_dir: RunDir, meth: Method) -> train.RLState:
    r = config.rl
    hyper = hyper_of(config, meth.name)
    directory = os.path.join(run_dir.phase_dir("internal_rl"), meth.name)
    ckpt = Checkpointer(os.path.join(directory, "checkpoints"))
    state, resumed = ckpt.restore_or(_seed_states(config, meth, hyper))
    start = int(state.step[0])
    if resumed:
        print(f"[internal_rl/{meth.name}] resuming from update {start}")
    writer = MetricsWriter(os.path.join(directory, "metrics.jsonl"), truncate_after=start)
    keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(config.seed), TRAIN_TAG),
                            r.rl_seeds)
    episodes = sum(rec["episodes"] for rec in writer.read())
    progress = Progress(f"internal_rl/{meth.name}", r.rl_updates, unit="updates", start=start)
    logged = state
    try:
        while int(state.step[0]) < r.rl_updates:
            num = min(r.rl_updates_per_call, r.rl_updates - int(state.step[0]))
            step0 = int(state.step[0])
            state, metrics = train.train_steps(state, meth.frozen, keys, learner=meth.learner,
                                               spec=meth.spec, hyper=hyper, num_steps=num)
            metrics = jax.tree.map(np.asarray, metrics)  # each [seeds, num]
            bad = metrics["nonfinite"] > 0
            guards.check({"nonfinite_steps": bad.sum(),
                          "first_nonfinite_step": step0 + bad.any(0).argmax() if bad.any() else -1},
                         f"internal_rl/{meth.name}", config.on_nonfinite)
            for j in range(num):
                line = {k: float(v[:, j].mean()) for k, v in metrics.items()}
                line.update({f"success_seed{s}": float(metrics["success"][s, j])
                             for s in range(r.rl_seeds)})
                writer.write(step0 + j + 1, line)
                episodes += line["episodes"]
            progress.update(int(state.step[0]), episodes=int(episodes),
                            success=float(metrics["success"][:, -1].mean()),
                            env_steps_per_decision=float(metrics["steps_per_decision"].mean()))
            logged = state
            ckpt.save(int(state.step[0]), state)
    except KeyboardInterrupt:
        ckpt.save(int(logged.step[0]), logged)  # the last state whose metrics lines are written
        raise
    return state


def curve(run_dir: RunDir, name: str, seeds: int) -> dict[str, list[float]]:
    """Success per update (mean, min, max over seeds) against cumulative episodes per seed."""
    records = MetricsWriter(os.path.join(run_dir.phase_dir("internal_rl"), name,
                                         "metrics.jsonl")).read()
    per_seed = np.array([[rec[f"success_seed{s}"] for s in range(seeds)] for rec in records])
    return {"episodes": np.cumsum([rec["episodes"] for rec in records]).tolist(),
            "env_steps": np.cumsum([rec["env_steps"] for rec in records]).tolist(),
            "success": per_seed.mean(1).tolist(), "success_min": per_seed.min(1).tolist(),
            "success_max": per_seed.max(1).tolist()}


def ceiling(config: configs.Config, run_dir: RunDir, key: jax.Array) -> dict[str, Any]:
    """``gt_steer_success``: the RL task solved by the ground-truth-switched supervised controllers
    at the RL layer (gridworld runs whose steer phase is done and trained that layer; else
    nothing)."""
    r, m = config.rl, config.meta
    _, model = artefacts.env_and_model(config)
    if (config.env != "gridworld" or not run_dir.is_done("steer")
            or m.layer not in config.analysis.layers(model.num_layers)):
        return {}
    controllers = artefacts.load_controllers(run_dir, config, m.layer)
    episodes = max(r.rl_eval_episodes, 512)
    steered = steering.steered_rollout(key, artefacts.load_params(run_dir, config),
                                       controllers, model, rl_env(config), m.layer, episodes,
                                       forget=r.rl_forget)
    success = float(np.mean(steered.success))
    print(f"[internal_rl] ground-truth-switched subgoal controllers at layer {m.layer}: success "
          f"{success:.4f} over {episodes} episodes (what the frozen model can do on the task)")
    return {"gt_steer_success": success, "gt_steer_colour_success": rollout.colour_success(steered),
            "gt_steer_episodes": episodes}


def run(config: configs.Config, run_dir: RunDir) -> dict[str, Any]:
    r = config.rl
    key = jax.random.PRNGKey(config.seed)
    figures: dict[str, Any] = {"task": r.rl_task, "seeds": r.rl_seeds, "updates": r.rl_updates,
                               "forget": r.rl_forget}
    figures.update(ceiling(config, run_dir, jax.random.fold_in(key, CEILING_TAG)))
    curves = {}
    for name in r.methods():
        meth = method(config, run_dir, name)
        figures.update({f"{name}.{k}": v for k, v in meth.figures.items()})
        if "codebook_subgoal_purity" in meth.figures:
            print(f"[internal_rl/{name}] codebook of {r.codebook_size} codes: subgoal purity "
                  f"{meth.figures['codebook_subgoal_purity']:.3f} (a diagnosis; no label is used)")
        hyper = hyper_of(config, name)
        initial = measure(meth, _seed_states(config, meth, hyper).params,
                          jax.random.fold_in(key, INITIAL_EVAL_TAG), r.rl_initial_episodes // r.rl_seeds)
        initial_rate = initial["successes"].sum() / initial["episodes"].sum()
        print(f"[internal_rl/{name}] initial success {initial_rate:.2e} over "
              f"{int(initial['episodes'].sum())} episodes")
        state = train_method(config, run_dir, meth)
        final = measure(meth, state.params, jax.random.fold_in(key, FINAL_EVAL_TAG),
                        r.rl_eval_episodes)
        rates = final["successes"] / final["episodes"]
        curves[name] = curve(run_dir, name, r.rl_seeds)
        figures.update({
            f"{name}.success_rate": float(rates.mean()),
            f"{name}.success_rate_std": float(rates.std()),
            f"{name}.success_rate_per_seed": rates.tolist(),
            f"{name}.progress": float((final["progress"] / final["episodes"]).mean()),
            f"{name}.initial_success_rate": float(initial_rate),
            f"{name}.initial_episodes": int(initial["episodes"].sum()),
            f"{name}.episodes": int(curves[name]["episodes"][-1]) if curves[name]["episodes"] else 0,
            f"{name}.env_steps": int(curves[name]["env_steps"][-1]) if curves[name]["env_steps"] else 0,
            f"{name}.env_steps_per_decision": float(final["env_steps"].sum()
                                                    / max(final["decisions"].sum(), 1)),
            f"{name}.curve": [[e, s] for e, s in zip(curves[name]["episodes"],
                                                      curves[name]["success"])],
        })
        print(f"[internal_rl/{name}] final success {rates.mean():.4f} (seeds "
              f"{', '.join(f'{x:.4f}' for x in rates)})")
        if config.env == "ant":
            # The paper reports ant success relative to the expert's on the same task.
            expert = run_dir.results().get("data", {}).get("expert_posttrain_success")
            figures[f"{name}.success_rate_normalised"] = (
                float(rates.mean()) / expert if expert else None)
    plots.plot_rl_curves(curves, os.path.join(run_dir.plots_dir, "internal_rl_success.png"),
                         title=f"task {r.rl_task}: success per update ({r.rl_seeds} seeds)")
    return figures
