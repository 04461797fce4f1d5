"""Phase ``data``: expert demonstrations for pretraining and analysis.

Writes ``DIR/data/train.npz`` and ``DIR/data/eval.npz`` (pretraining tasks, held-out seeds). Each
file is written atomically and the whole phase takes seconds, so a crash costs at most this phase;
a finished split is not regenerated on resume.
"""
from __future__ import annotations

import os
import time
from typing import Any

import jax
import numpy as np

from experiments import configs
from hrl_internal.analysis import plots
from hrl_internal.data import dataset
from hrl_internal.utils import sharding
from hrl_internal.utils.progress import Progress
from launch import artefacts
from launch.rundir import RunDir

POSTTRAIN_CHECK_EPISODES = 1024


def run(config: configs.Config, run: RunDir) -> dict[str, Any]:
    params = config.gridworld.env_params("pretrain")
    data = config.data
    figures: dict[str, Any] = {}
    # One chunk shape for both splits: a single compilation.
    chunk = min(data.chunk_episodes, data.train_episodes)
    seconds, generated = 0.0, 0
    for split, count in (("train", data.train_episodes), ("eval", data.eval_episodes)):
        path = artefacts.split_path(run, split)
        if os.path.exists(path):
            episodes, _ = dataset.load(path, params)
            print(f"[data] {split}: reusing {path}")
        else:
            start = time.perf_counter()
            progress = Progress(f"data/{split}", count, unit="episodes")
            episodes = dataset.generate_chunked(
                artefacts.split_key(config.seed, split), params, count, data.epsilon,
                chunk, on_chunk=progress.update)
            seconds += time.perf_counter() - start
            generated += count
            if sharding.writes_files():
                dataset.save(path, episodes, params, seed=config.seed, split=split,
                             epsilon=data.epsilon)
        stats = dataset.summary(episodes)
        figures[f"{split}_episodes"] = episodes.num_episodes
        if split == "train":
            figures.update({f"expert_{k}": v for k, v in stats.items()})
            plots.plot_episodes(episodes, params, os.path.join(run.plots_dir, "data_episodes.png"))

    # The expert on the post-training task: the ceiling for internal RL (not stored).
    post = config.gridworld.env_params("posttrain")
    keys = jax.random.split(artefacts.split_key(config.seed, "posttrain_check"),
                            POSTTRAIN_CHECK_EPISODES)
    figures["expert_posttrain_success_rate"] = float(
        np.mean(dataset.generate(keys, post, data.epsilon).success))
    if generated:
        figures["episodes_per_s"] = generated / seconds
    return figures
