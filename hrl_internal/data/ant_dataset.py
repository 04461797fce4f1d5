"""ant-pinpad demonstrations: the expert's episodes on disk, and packed for the base model.

Unlike the gridworld, an ant observation cannot be re-rendered from a few integers, so episodes
store observations (float32) and continuous actions. ``.npz`` files carry a JSON header with the
environment parameters and are written atomically (``dataset.write_npz``).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from hrl_internal.data import ant_expert, dataset
from hrl_internal.data.ant_expert import Rollout
from hrl_internal.data.dataset import DatasetError
from hrl_internal.envs.ant_pinpad import ACTION_SIZE, AntEnvParams

FORMAT_VERSION = 1


def to_numpy(episodes: Rollout) -> Rollout:
    small = np.int16
    return Rollout(
        obs=np.asarray(episodes.obs, np.float32), actions=np.asarray(episodes.actions, np.float32),
        mask=np.asarray(episodes.mask, bool), subgoals=np.asarray(episodes.subgoals, small),
        task_index=np.asarray(episodes.task_index, small),
        task_id=np.asarray(episodes.task_id, np.int32), success=np.asarray(episodes.success, bool),
        object_cells=np.asarray(episodes.object_cells, small),
        wall_cells=np.asarray(episodes.wall_cells, small))


def generate_chunked(key: jax.Array, expert_params: Any, env: AntEnvParams, num_episodes: int,
                     chunk: int, on_chunk: Any = None, greedy: bool = True) -> Rollout:
    """``num_episodes`` expert episodes on the host, ``chunk`` per call: clean (mean-action)
    episodes when ``greedy``, else actions sampled from the expert's Gaussian."""
    return dataset.in_chunks(
        jax.random.split(key, num_episodes), chunk,
        lambda keys: to_numpy(ant_expert.rollout(expert_params, keys, env=env, greedy=greedy)),
        on_chunk)


def expected_shapes(env: AntEnvParams, num_episodes: int) -> dict[str, tuple[int, ...]]:
    n, t = num_episodes, env.max_steps
    return {"obs": (n, t + 1, env.obs_size), "actions": (n, t, ACTION_SIZE), "mask": (n, t),
            "subgoals": (n, t), "task_index": (n, t), "task_id": (n,), "success": (n,),
            "object_cells": (n, env.num_objects), "wall_cells": (n, env.num_walls)}


def save(path: str, episodes: Rollout, env: AntEnvParams, **meta: Any) -> None:
    episodes = to_numpy(episodes)
    header = {"format_version": FORMAT_VERSION, "env_params": dataclasses.asdict(env),
              "num_episodes": int(episodes.task_id.shape[0]), **meta}
    dataset.write_npz(path, header, episodes._asdict())


def load(path: str, env: AntEnvParams | None = None) -> tuple[Rollout, dict[str, Any]]:
    """Reads ``save``'s file; DatasetError when missing, damaged or made for other parameters."""
    arrays, meta = dataset.read_npz(path, FORMAT_VERSION, Rollout._fields)
    stored = AntEnvParams(**meta["env_params"])
    if env is not None and stored != env:
        raise DatasetError(f"dataset {path} was generated for {stored}, not {env}")
    dataset.check_shapes(path, arrays, expected_shapes(stored, meta["num_episodes"]))
    return Rollout(**{k: arrays[k] for k in Rollout._fields}), meta
