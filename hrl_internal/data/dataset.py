"""Expert demonstration datasets: generation, storage and batching.

Episodes are stored compactly as positions (the agent's cell per step, the layout per episode) and
observations are rendered from them on demand with ``gridworld.render``, inside jit. A 10^5-episode
dataset is a few tens of MB on disk instead of tens of GB of one-hot floats.

Time convention, for an episode padded to T = max_steps:
  ``agent_cells[:, t]`` is the agent's cell when observation o_t is emitted (t = 0..T);
  ``actions[:, t]`` is a_t, taken after o_t; ``mask[:, t]`` says a_t was taken (the episode had not
  ended); ``subgoals[:, t]`` and ``task_index[:, t]`` label the subgoal pursued while taking a_t.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hrl_internal.data import expert
from hrl_internal.envs import gridworld
from hrl_internal.envs.gridworld import EnvParams

FORMAT_VERSION = 1


class DatasetError(ValueError):
    """A dataset file that is missing, truncated, or does not match what the caller expects."""


class Episodes(NamedTuple):
    """A batch of padded episodes (a pytree of arrays with leading axis ``num_episodes``)."""

    agent_cells: Any  # [N, T+1] int
    actions: Any  # [N, T] int
    mask: Any  # [N, T] bool
    subgoals: Any  # [N, T] int, analysis labels only
    task_index: Any  # [N, T] int, analysis labels only
    object_cells: Any  # [N, num_objects] int
    wall_cells: Any  # [N, num_walls] int
    task_id: Any  # [N] int
    success: Any  # [N] bool

    @property
    def num_episodes(self) -> int:
        return self.actions.shape[0]


def _episode(key: jax.Array, params: EnvParams, epsilon: jax.Array) -> Episodes:
    reset_key, act_key = jax.random.split(key)
    _, state = gridworld.reset(reset_key, params)

    def act(state, step_key):
        action = expert.expert_action(step_key, state, params, epsilon)
        record = (state.agent_cell, action, ~state.done, gridworld.current_subgoal(state),
                  state.progress)
        _, state, _, _, _ = gridworld.step(state, action, params)
        return state, record

    keys = jax.random.split(act_key, params.max_steps)
    final, (cells, actions, valid, subgoals, task_index) = jax.lax.scan(act, state, keys)
    return Episodes(
        agent_cells=jnp.concatenate([cells, final.agent_cell[None]]),
        actions=actions,
        mask=valid,
        subgoals=subgoals,
        task_index=task_index,
        object_cells=state.object_cells,
        wall_cells=state.wall_cells,
        task_id=state.task_id,
        success=final.success,
    )


def generate(keys: jax.Array, params: EnvParams, epsilon: float = 0.0) -> Episodes:
    """Rolls out the expert in one environment per key, all at once (one jitted, vmapped scan).

    Args:
      keys: [N] PRNG keys, one per episode: episode i depends on ``keys[i]`` alone, so a dataset is
        the same whether it is generated in one call or in chunks.
    Returns:
      Episodes of device arrays; ``to_numpy`` gives the compact storage dtypes.
    """
    return _generate(keys, params, jnp.asarray(epsilon, jnp.float32))


@functools.partial(jax.jit, static_argnums=1)
def _generate(keys, params, epsilon):
    return jax.vmap(_episode, in_axes=(0, None, None))(keys, params, epsilon)


def generate_chunked(key: jax.Array, params: EnvParams, num_episodes: int, epsilon: float,
                     chunk: int, on_chunk: Any = None) -> Episodes:
    """``generate`` for ``num_episodes`` episodes in chunks of ``chunk`` (bounded memory).

    The last chunk is padded to the same shape, so there is a single compilation. Identical to a
    single ``generate(jax.random.split(key, num_episodes), ...)``. ``on_chunk(done)`` reports
    progress on the host.
    """
    return in_chunks(jax.random.split(key, num_episodes), chunk,
                     lambda keys: to_numpy(generate(keys, params, epsilon)), on_chunk)


def in_chunks(keys: jax.Array, chunk: int, generate_fn: Any, on_chunk: Any = None) -> Any:
    """``generate_fn(keys [chunk, 2]) -> host episodes`` over all ``keys``, ``chunk`` at a time,
    concatenated. The last chunk is padded with repeats of the final key (then dropped), so every
    call has one shape and compiles once."""
    num_episodes = keys.shape[0]
    parts = []
    for start in range(0, num_episodes, chunk):
        index = np.minimum(np.arange(start, start + chunk), num_episodes - 1)
        parts.append(take(generate_fn(keys[index]), slice(0, min(chunk, num_episodes - start))))
        if on_chunk is not None:
            on_chunk(min(start + chunk, num_episodes))
    return concatenate(parts)


def to_numpy(episodes: Episodes) -> Episodes:
    """Host copies in compact dtypes (cells and labels as int16, flags as bool)."""
    small = np.int16
    return Episodes(
        agent_cells=np.asarray(episodes.agent_cells, small),
        actions=np.asarray(episodes.actions, np.int8),
        mask=np.asarray(episodes.mask, bool),
        subgoals=np.asarray(episodes.subgoals, small),
        task_index=np.asarray(episodes.task_index, small),
        object_cells=np.asarray(episodes.object_cells, small),
        wall_cells=np.asarray(episodes.wall_cells, small),
        task_id=np.asarray(episodes.task_id, np.int32),
        success=np.asarray(episodes.success, bool),
    )


def concatenate(parts: list[Any]) -> Any:
    """Joins host episode batches (any NamedTuple of arrays) along the episode axis."""
    return type(parts[0])(*[np.concatenate(field) for field in zip(*parts)])


def observations(episodes: Episodes, params: EnvParams) -> jax.Array:
    """Renders ``[N, T+1, obs_size]`` float32 observations o_0..o_T from stored positions. Jittable."""
    render_step = jax.vmap(gridworld.render, in_axes=(0, None, None, None))
    render_episode = jax.vmap(render_step, in_axes=(0, 0, 0, None))
    return render_episode(jnp.asarray(episodes.agent_cells, jnp.int32),
                          jnp.asarray(episodes.object_cells, jnp.int32),
                          jnp.asarray(episodes.wall_cells, jnp.int32), params)


def expected_shapes(params: EnvParams, num_episodes: int) -> dict[str, tuple[int, ...]]:
    n, t = num_episodes, params.max_steps
    return {
        "agent_cells": (n, t + 1), "actions": (n, t), "mask": (n, t), "subgoals": (n, t),
        "task_index": (n, t), "object_cells": (n, params.num_objects),
        "wall_cells": (n, params.num_walls), "task_id": (n,), "success": (n,),
    }


def save(path: str, episodes: Episodes, params: EnvParams, **meta: Any) -> None:
    """Writes an ``.npz`` atomically (temp file, then rename): a crash never leaves half a file."""
    episodes = to_numpy(episodes)
    header = {"format_version": FORMAT_VERSION, "env_params": _params_dict(params),
              "num_episodes": episodes.num_episodes, **meta}
    write_npz(path, header, episodes._asdict())


def write_npz(path: str, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """``arrays`` and a JSON ``header`` (key ``meta``) to ``path``, atomically."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, meta=np.asarray(json.dumps(header)), **arrays)
    os.replace(tmp, path)


def read_npz(path: str, format_version: int, fields: tuple[str, ...]
             ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(arrays, header)`` of a file written by ``write_npz``; DatasetError with the reason when it
    is missing, truncated, of another format version, or lacks one of ``fields``."""
    if not os.path.exists(path):
        raise DatasetError(f"dataset {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # zipfile/ValueError/EOFError for a truncated or foreign file
        raise DatasetError(f"dataset {path} is unreadable (truncated or not an .npz): {e}") from e
    if "meta" not in arrays:
        raise DatasetError(f"dataset {path} has no 'meta' header; it was not written by dataset.save")
    meta = json.loads(str(arrays.pop("meta")))
    if meta.get("format_version") != format_version:
        raise DatasetError(f"dataset {path} has format_version {meta.get('format_version')}, "
                           f"expected {format_version}")
    missing = sorted(set(fields) - set(arrays))
    if missing:
        raise DatasetError(f"dataset {path} lacks fields {missing}")
    return arrays, meta


def check_shapes(path: str, arrays: dict[str, np.ndarray],
                 expected: dict[str, tuple[int, ...]]) -> None:
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise DatasetError(f"dataset {path}: field {name!r} has shape {arrays[name].shape}, "
                               f"expected {shape}")


def load(path: str, params: EnvParams | None = None) -> tuple[Episodes, dict[str, Any]]:
    """Reads a dataset written by ``save``; needs neither the expert nor the generator.

    Raises DatasetError with the reason when the file is missing, truncated, of another format, or
    (when ``params`` is given) generated for other environment parameters.
    """
    arrays, meta = read_npz(path, FORMAT_VERSION, Episodes._fields)
    stored = EnvParams(**meta["env_params"])
    if params is not None and stored != params:
        raise DatasetError(f"dataset {path} was generated for {stored}, not {params}")
    check_shapes(path, arrays, expected_shapes(stored, meta["num_episodes"]))
    return Episodes(**{k: arrays[k] for k in Episodes._fields}), meta


def _params_dict(params: EnvParams) -> dict[str, Any]:
    return dataclasses.asdict(params)


def take(episodes: Any, index: Any) -> Any:
    """Episodes ``index`` of a batch (any NamedTuple of arrays with a leading episode axis)."""
    return type(episodes)(*[field[index] for field in episodes])


def iterate_batches(episodes: Episodes, batch_size: int, seed: int, *, start_step: int = 0,
                    drop_remainder: bool = True) -> Iterator[Episodes]:
    """Endless shuffled batches of padded episodes (each epoch a fresh permutation).

    Deterministic in ``seed``; ``start_step`` skips that many batches so a resumed run sees the
    same stream as an uninterrupted one. Batches keep their masks; render with ``observations``.
    """
    n = episodes.num_episodes
    if batch_size > n and drop_remainder:
        raise DatasetError(f"batch_size {batch_size} exceeds the {n} episodes in the dataset")
    per_epoch = n // batch_size if drop_remainder else -(-n // batch_size)
    step = start_step
    while True:
        epoch, offset = divmod(step, per_epoch)
        order = np.random.default_rng([seed, epoch]).permutation(n)
        index = order[offset * batch_size:(offset + 1) * batch_size]
        yield take(episodes, index)
        step += 1


def summary(episodes: Episodes) -> dict[str, float]:
    """Dataset statistics worth printing: success rate, episode length, subgoal switches."""
    mask = np.asarray(episodes.mask)
    lengths = mask.sum(axis=1)
    subgoals = np.asarray(episodes.subgoals)
    switches = ((subgoals[:, 1:] != subgoals[:, :-1]) & mask[:, 1:]).sum(axis=1)
    return {
        "success_rate": float(np.mean(episodes.success)),
        "mean_episode_length": float(lengths.mean()),
        "max_episode_length": int(lengths.max()),
        "mean_subgoal_switches": float(switches.mean()),
    }
