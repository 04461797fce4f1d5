import os

import jax
import numpy as np
import pytest

from hrl_internal.data import dataset
from hrl_internal.envs import gridworld as gw

P = gw.EnvParams()


@pytest.fixture(scope="module")
def episodes():
    return dataset.to_numpy(dataset.generate(jax.random.split(jax.random.PRNGKey(0), 96), P))


def test_generation_is_deterministic_and_chunking_changes_nothing(episodes):
    key = jax.random.PRNGKey(0)
    chunked = dataset.generate_chunked(key, P, 96, 0.0, chunk=40)
    for a, b in zip(episodes, chunked):
        np.testing.assert_array_equal(a, b)
    other = dataset.to_numpy(dataset.generate(jax.random.split(jax.random.PRNGKey(1), 96), P))
    assert not np.array_equal(other.actions, episodes.actions)


def test_labels_and_masks_are_consistent(episodes):
    mask = episodes.mask
    lengths = mask.sum(axis=1)
    # The mask is a prefix: once an episode ends it stays ended.
    np.testing.assert_array_equal(mask, np.arange(P.max_steps)[None] < lengths[:, None])
    tasks = np.asarray(gw.task_array(P))[episodes.task_id]
    for i in range(episodes.num_episodes):
        n = lengths[i]
        colours = tasks[i][episodes.task_index[i, :n]]
        np.testing.assert_array_equal(episodes.subgoals[i, :n], colours // 2)
        assert episodes.task_index[i, 0] == 0
        assert np.all(np.diff(episodes.task_index[i, :n]) >= 0)
        # The agent stands on the last colour of the task at the end.
        assert episodes.agent_cells[i, n] == episodes.object_cells[i, tasks[i][5]]


def test_rendered_observations_equal_the_env_replayed(episodes):
    obs = np.asarray(jax.jit(dataset.observations, static_argnums=1)(
        dataset.take(episodes, slice(0, 4)), P))
    assert obs.shape == (4, P.max_steps + 1, P.obs_size)
    step = jax.jit(gw.step, static_argnums=2)
    for i in range(4):
        state = gw.EnvState(
            agent_cell=np.int32(episodes.agent_cells[i, 0]),
            object_cells=episodes.object_cells[i].astype(np.int32),
            wall_cells=episodes.wall_cells[i].astype(np.int32),
            task=np.asarray(gw.task_array(P)[episodes.task_id[i]]),
            task_len=np.int32(6), task_id=np.int32(episodes.task_id[i]), progress=np.int32(0),
            time=np.int32(0), done=np.bool_(False), success=np.bool_(False))
        np.testing.assert_array_equal(gw.observe(state, P), obs[i, 0])
        for t in range(int(episodes.mask[i].sum())):
            o, state, _, _, _ = step(state, np.int32(episodes.actions[i, t]), P)
            np.testing.assert_array_equal(o, obs[i, t + 1])
        assert bool(state.success) == bool(episodes.success[i])


def test_save_load_round_trip(tmp_path, episodes):
    path = str(tmp_path / "d.npz")
    dataset.save(path, episodes, P, seed=7)
    loaded, meta = dataset.load(path, P)
    assert meta["seed"] == 7 and meta["num_episodes"] == 96
    for a, b in zip(episodes, loaded):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    assert not [f for f in os.listdir(tmp_path) if "tmp" in f]


def test_load_rejects_bad_files_with_a_reason(tmp_path, episodes):
    path = str(tmp_path / "d.npz")
    dataset.save(path, episodes, P)
    with pytest.raises(dataset.DatasetError, match="generated for"):
        dataset.load(path, gw.EnvParams(max_steps=50))
    with pytest.raises(dataset.DatasetError, match="does not exist"):
        dataset.load(str(tmp_path / "missing.npz"))
    truncated = str(tmp_path / "t.npz")
    with open(path, "rb") as f, open(truncated, "wb") as g:
        g.write(f.read()[: os.path.getsize(path) // 2])
    with pytest.raises(dataset.DatasetError, match="unreadable"):
        dataset.load(truncated)
    foreign = str(tmp_path / "f.npz")
    np.savez(foreign, actions=np.zeros(3))
    with pytest.raises(dataset.DatasetError, match="no 'meta'"):
        dataset.load(foreign)
    short = episodes._replace(actions=episodes.actions[:, :50])
    bad = str(tmp_path / "s.npz")
    dataset.save(bad, short, P)
    with pytest.raises(dataset.DatasetError, match="'actions' has shape"):
        dataset.load(bad)


def test_batches_are_shuffled_epochs_and_resume_exactly(episodes):
    stream = dataset.iterate_batches(episodes, 32, seed=3)
    epoch = [next(stream) for _ in range(3)]
    ids = np.concatenate([b.agent_cells[:, 0] * 1000 + b.object_cells[:, 0] for b in epoch])
    all_ids = episodes.agent_cells[:, 0] * 1000 + episodes.object_cells[:, 0]
    assert sorted(ids) == sorted(all_ids), "an epoch visits every episode once"
    assert not np.array_equal(ids, all_ids), "and in shuffled order"
    later = [next(stream) for _ in range(4)]
    resumed = dataset.iterate_batches(episodes, 32, seed=3, start_step=3)
    for a in later:
        np.testing.assert_array_equal(a.actions, next(resumed).actions)
    with pytest.raises(dataset.DatasetError, match="batch_size"):
        next(dataset.iterate_batches(episodes, 500, seed=0))


def test_summary_counts_subgoal_switches(episodes):
    stats = dataset.summary(episodes)
    assert stats["success_rate"] == 1.0
    assert stats["mean_subgoal_switches"] == 2.0  # three subgoals per pretraining task
    assert 6 <= stats["mean_episode_length"] <= P.max_steps
