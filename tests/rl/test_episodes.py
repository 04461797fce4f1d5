import jax
import jax.numpy as jnp
import numpy as np

from hrl_internal.envs import gridworld
from hrl_internal.rl import episodes


def _random_walk(num_slots=8, start_ticks=12, max_episodes=4, max_steps=5):
    """Uniform random actions through the slot bookkeeping, as the rollouts use it."""
    env = gridworld.EnvParams(grid_size=3, num_objects=2, num_walls=0, task_set="0-1",
                              max_steps=max_steps)
    pool = episodes.initial_pool(jax.random.PRNGKey(0), env, num_slots, max_episodes)
    states = episodes.pool_entry(pool, jnp.zeros((num_slots,), jnp.int32))
    slots = episodes.start(num_slots)
    records = []
    for t in range(start_ticks + max_steps):
        actions = jax.random.randint(jax.random.PRNGKey(t + 1), (num_slots,), 0, 4)
        may = episodes.may_restart(slots, jnp.asarray(t), start_ticks, max_episodes)
        _, stepped, reward, done, info = jax.vmap(gridworld.step, in_axes=(0, 0, None))(
            states, actions, env)
        restart = may & done
        fresh = episodes.pool_entry(pool, slots.index + 1)
        states = jax.tree.map(lambda a, b: jnp.where(
            restart.reshape(restart.shape + (1,) * (a.ndim - 1)), a, b), fresh, stepped)
        records.append(episodes.record(slots, reward, done, info["success"], info["task_index"],
                                       max_episodes))
        slots = episodes.advance(slots, done, restart)
    ticks = jax.tree.map(lambda *x: jnp.stack(x), *records)
    return ticks, slots, num_slots * max_episodes


def test_every_started_episode_ends_once_and_advantages_normalise_over_episodes():
    ticks, slots, n = _random_walk()
    assert not bool(jnp.any(slots.running))  # drained: nothing cut off
    ids = np.asarray(ticks.episode)[np.asarray(ticks.active)]
    ended = np.asarray(ticks.episode)[np.asarray(ticks.ended)]
    assert sorted(set(ids)) == sorted(ended) and len(ended) == len(set(ended))
    firsts = np.asarray(ticks.episode)[np.asarray(ticks.first)]
    assert sorted(firsts) == sorted(ended)
    assert len(ended) > 6  # slots did restart
    adv, stats = episodes.advantages(ticks, n)
    assert int(stats.episodes) == len(ended)
    assert int(stats.env_steps) == int(np.sum(np.asarray(ticks.active)))
    per_episode = {}
    for i, a in zip(np.asarray(ticks.episode)[np.asarray(ticks.active)],
                    np.asarray(adv)[np.asarray(ticks.active)]):
        assert per_episode.setdefault(i, a) == a  # one advantage per episode
    values = np.array(list(per_episode.values()))
    assert 0 < int(stats.successes) < len(ended)
    assert abs(values.mean()) < 1e-5 and abs(values.std() - 1.0) < 1e-2
