"""Phase ``data`` on the ant: train the PPO expert, measure it, record its clean demonstrations.

The expert trains first (``DIR/data/expert/``: orbax checkpoints every ``expert_updates_per_call``
updates and on Ctrl-C, ``metrics.jsonl``); a rerun resumes it and ends with the same parameters as
an uninterrupted run. Its first ``expert_walk_updates`` updates run under walking rules (only a
fall, success or the time limit end an episode: ``end_on_violation=False``), the rest under the
full rules that its success and the demonstrations are measured under. Then
``DIR/data/train.npz`` and ``eval.npz`` hold episodes on the pretraining tasks acting by
``expert_demo_action`` (mean or sampled actions); a finished split is not regenerated on resume.
"""
from __future__ import annotations

import os
import time
from typing import Any

import jax
import numpy as np

from experiments import configs
from hrl_internal.analysis import plots
from hrl_internal.data import ant_dataset, ant_expert, dataset
from hrl_internal.training import expert_ppo, guards
from hrl_internal.training.checkpoint import Checkpointer
from hrl_internal.utils import sharding
from hrl_internal.utils.metrics import MetricsWriter
from hrl_internal.utils.progress import Progress
from launch import artefacts
from launch.rundir import RunDir

EXPERT_INIT_TAG, EXPERT_TRAIN_TAG, EXPERT_EVAL_TAG = 21, 22, 23


def expert_checkpointer(run: RunDir) -> Checkpointer:
    return Checkpointer(os.path.join(run.phase_dir("data"), "expert", "checkpoints"))


def expert_template(config: configs.Config) -> expert_ppo.ExpertState:
    return expert_ppo.init_state(jax.random.fold_in(jax.random.PRNGKey(config.seed),
                                                    EXPERT_INIT_TAG),
                                 config.ant.env_params("pretrain"),
                                 config.ant.expert_hyper(config.skip_nonfinite))


def load_expert(run: RunDir, config: configs.Config) -> Any:
    """The trained expert's parameters (the latest checkpoint)."""
    return expert_checkpointer(run).restore(expert_template(config)).params


def train_expert(config: configs.Config, run: RunDir) -> tuple[Any, list[dict]]:
    a = config.ant
    hyper = a.expert_hyper(config.skip_nonfinite)
    walk, full = a.env_params("pretrain", end_on_violation=False), a.env_params("pretrain")
    ckpt = expert_checkpointer(run)
    state, resumed = ckpt.restore_or(expert_template(config))
    start = int(state.step)
    if resumed:
        print(f"[data] expert: resuming from update {start}")
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), EXPERT_TRAIN_TAG)
    writer = MetricsWriter(os.path.join(os.path.dirname(ckpt.directory), "metrics.jsonl"),
                           truncate_after=start)
    progress = Progress("data/expert", a.expert_updates, unit="updates", start=start,
                        also_per_s={"env steps": hyper.num_envs * hyper.unroll})
    logged = state
    try:
        while int(state.step) < a.expert_updates:
            step = int(state.step)
            walking = step < a.expert_walk_updates
            # A call never straddles the switch of rules, so each call trains under one env.
            end = min(a.expert_updates, a.expert_walk_updates) if walking else a.expert_updates
            num = min(a.expert_updates_per_call, end - step)
            state, metrics = expert_ppo.train_steps(state, key, env=walk if walking else full,
                                                    hyper=hyper, num_updates=num)
            guards.check(metrics, "data/expert", config.on_nonfinite)
            step = int(state.step)
            line = {k: float(v) for k, v in metrics.items() if k != "first_nonfinite_step"}
            line["full_rules"] = float(not walking)
            writer.write(step, line)
            progress.update(step, reward=line["reward_per_step"], success=line["success_rate"],
                            episodes=int(line["episodes"]))
            logged = state
            ckpt.save(step, state)
    except KeyboardInterrupt:
        ckpt.save(int(logged.step), logged)
        raise
    return state.params, writer.read()


def success_rate(params: Any, config: configs.Config, task_set: str, tag: int) -> float:
    env = config.ant.env_params(task_set)
    keys = jax.random.split(jax.random.fold_in(
        jax.random.fold_in(jax.random.PRNGKey(config.seed), EXPERT_EVAL_TAG), tag),
        config.ant.expert_eval_episodes)
    return float(np.mean(ant_expert.rollout(params, keys, env=env,
                                            greedy=config.ant.demo_greedy).success))


def run(config: configs.Config, run: RunDir) -> dict[str, Any]:
    env = config.ant.env_params("pretrain")
    data = config.data
    params, records = train_expert(config, run)
    figures: dict[str, Any] = {
        "expert_updates": config.ant.expert_updates,
        "expert_env_steps": config.ant.expert_updates * config.ant.expert_envs
        * config.ant.expert_unroll,
        "expert_pretrain_success": success_rate(params, config, "pretrain", 1),
        "expert_posttrain_success": success_rate(params, config, "posttrain", 2),
    }
    if records:
        figures["expert_final_reward_per_step"] = records[-1]["reward_per_step"]
        plots.plot_curves(records, ["reward_per_step"], ["success_rate"],
                          os.path.join(run.plots_dir, "expert_curves.png"),
                          title="ant expert (PPO): shaped reward per step, training success")

    chunk = min(data.chunk_episodes, data.train_episodes)
    seconds, generated = 0.0, 0
    for split, count in (("train", data.train_episodes), ("eval", data.eval_episodes)):
        path = artefacts.split_path(run, split)
        if os.path.exists(path):
            episodes, _ = ant_dataset.load(path, env)
            print(f"[data] {split}: reusing {path}")
        else:
            start = time.perf_counter()
            progress = Progress(f"data/{split}", count, unit="episodes")
            episodes = ant_dataset.generate_chunked(
                artefacts.split_key(config.seed, split), params, env, count, chunk,
                on_chunk=progress.update, greedy=config.ant.demo_greedy)
            seconds += time.perf_counter() - start
            generated += count
            if sharding.writes_files():
                ant_dataset.save(path, episodes, env, seed=config.seed, split=split)
        figures[f"{split}_episodes"] = int(episodes.task_id.shape[0])
        if split == "train":
            figures.update({f"demo_{k}": v for k, v in dataset.summary(episodes).items()})
            plots.plot_episodes(episodes, env, os.path.join(run.plots_dir, "data_episodes.png"))
    if generated:
        figures["episodes_per_s"] = generated / seconds
    return figures
