"""Latent-code check (App. B.3.2): do the metacontroller's codes mean "go to colour pair k"?

Codes are collected from held-out expert episodes (the code in force at the middle of each true
subgoal segment, averaged per subgoal k). Each collected code then drives the frozen base model
through the internal environment at every switch, on single-subgoal tasks (``pairs``: reach colour
2k, then 2k+1, from a fresh layout); the reach rate of pair k under code j is compared with codes
drawn from the N(0, I) prior. A diagonal above the prior row means the codes carry the subgoal.

``replay``: the codes the metacontroller inferred for an expert episode, chosen in order at the
steered model's switches from that episode's start: how often is its subgoal order reproduced?
``same_task_partner``: the same replay with the codes of *another* episode of the same task (other
layout, same colours in the same order). Codes that name subgoals reproduce the order just as well
there; codes that name places or moves of their own layout do no better than the prior.
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hrl_internal.analysis import probes
from hrl_internal.envs import gridworld
from hrl_internal.rl import internal_env, internal_rl, policy, train
from hrl_internal.rl.internal_env import Frozen

NUM_SUBGOALS = len(gridworld.PAIR_TASKS)


def codes_by_subgoal(z: np.ndarray, subgoals: np.ndarray, segments: np.ndarray,
                     mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean code per subgoal ``[K, n_z]`` and segment counts ``[K]``.

    Args (packed rows): z [R, T, n_z] integrated codes; subgoals, segments [R, T] int;
      mask [R, T] bool.
    """
    sums = np.zeros((NUM_SUBGOALS, z.shape[-1]))
    counts = np.zeros(NUM_SUBGOALS, int)
    for r in range(z.shape[0]):
        t = 0
        n = int(mask[r].sum())
        while t < n:
            end = t
            while end + 1 < n and (segments[r, end + 1] == segments[r, t]
                                   and subgoals[r, end + 1] == subgoals[r, t]):
                end += 1
            k = int(subgoals[r, t])
            sums[k] += z[r, (t + end) // 2]
            counts[k] += 1
            t = end + 1
    return sums / np.maximum(counts, 1)[:, None], counts


def code_probe(key: jax.Array, z: np.ndarray, subgoals: np.ndarray, mask: np.ndarray, *,
               steps: int = 1_000, batch_size: int = 512, learning_rate: float = 1e-2,
               num_classes: int = NUM_SUBGOALS) -> dict[str, float]:
    """Do the codes name the subgoal as an encoding? A softmax probe from the code z_t to the
    subgoal pursued at t, trained on the first half of the rows and scored on the rest (other
    episodes): ``probe_accuracy``, against ``probe_majority`` (always the most frequent subgoal).
    Codes that carry the subgoal score near 1 (the encoder sees the whole episode); codes that
    carry only moves or places score near the majority. ``probe_knn_accuracy``: the vote of the
    10 nearest training codes (up to 8,000 of them, for 2,000 held-out steps), for a subgoal the
    codes carry in a form no linear read-out finds. ``probe_code_std_by_dim``: the spread of each
    code dimension over the held-out steps (how many dimensions the codes use).

    Args (packed rows): z [R, T, n_z] integrated codes; subgoals [R, T] int; mask [R, T] bool.
    Any other per-step label in ``[0, num_classes)`` in place of ``subgoals`` asks whether the
    codes carry it instead (``experiments.code_meaning``: colours, moves, directions).
    """
    half = z.shape[0] // 2
    data = [probes.ProbeData(jnp.asarray(z[rows][mask[rows]][:, None, :]),
                             jnp.asarray(subgoals[rows][mask[rows]], jnp.int32))
            for rows in (slice(0, half), slice(half, None))]
    probe = probes.train(key, data[0], num_classes=num_classes, steps=steps,
                         batch_size=batch_size, learning_rate=learning_rate)
    rng = np.random.default_rng(0)
    train_x, train_y, test_x, test_y = (np.asarray(a) for a in (
        data[0].features[:, 0], data[0].labels, data[1].features[:, 0], data[1].labels))
    fit = rng.permutation(len(train_y))[:8_000]
    held = rng.permutation(len(test_y))[:2_000]
    distances = ((test_x[held, None, :] - train_x[None, fit, :]) ** 2).sum(-1)
    nearest = train_y[fit][np.argsort(distances, axis=1)[:, :10]]
    votes = np.stack([(nearest == k).sum(1) for k in range(num_classes)], 1)
    return {"probe_accuracy": float(probes.accuracy(probe, data[1])[0]),
            "probe_knn_accuracy": float(np.mean(votes.argmax(1) == test_y[held])),
            "probe_code_std_by_dim": [float(x) for x in test_x.std(0)],
            "probe_majority": probes.majority_baseline(data[0].labels, data[1].labels)}


def _fixed_code_params(template: Any, code: jax.Array, log_std: float) -> Any:
    return {**template, "mean": {"w": jnp.zeros_like(template["mean"]["w"]), "b": code},
            "log_std": jnp.full_like(template["log_std"], log_std)}


def reach_rates(codes: np.ndarray, frozen: Frozen, spec: internal_rl.InternalRLSpec,
                key: jax.Array, rounds: int = 1) -> dict[str, Any]:
    """Reach rate of each pair task ``k`` under each code ``j`` (``code_rates [j][k]``) and under
    codes from the prior (``prior_rates [k]``); ``spec.env.env`` must use the ``pairs`` task set."""
    assert spec.env.env.tasks == gridworld.PAIR_TASKS, "needs the 'pairs' task set"
    template = policy.init(jax.random.PRNGKey(0), spec.policy)
    k = NUM_SUBGOALS
    fixed = [_fixed_code_params(template, jnp.asarray(codes[j], jnp.float32), -30.0)
             for j in range(k) for _ in range(k)]
    prior = [_fixed_code_params(template, jnp.zeros(codes.shape[1]), 0.0) for _ in range(k)]
    params = jax.tree.map(lambda *x: jnp.stack(x), *fixed, *prior)
    tasks = jnp.asarray([t for _ in range(k) for t in range(k)] + list(range(k)), jnp.int32)
    successes = episodes = 0.0
    for i in range(rounds):
        stats = train.evaluate(params, frozen, jax.random.split(jax.random.fold_in(key, i),
                                                                len(tasks)),
                               learner="codes", spec=spec, task_ids=tasks)
        successes = successes + np.asarray(stats.successes, np.float64)
        episodes = episodes + np.asarray(stats.episodes, np.float64)
    rates = successes / np.maximum(episodes, 1)
    code_rates = rates[: k * k].reshape(k, k)
    prior_rates = rates[k * k:]
    return {"code_rates": code_rates.tolist(), "prior_rates": prior_rates.tolist(),
            "matched_rate": float(np.mean(np.diag(code_rates))),
            "mismatched_rate": float(code_rates[~np.eye(k, dtype=bool)].mean()),
            "prior_rate": float(prior_rates.mean()),
            "episodes_per_cell": float(episodes.min())}


def switch_codes(z: np.ndarray, beta: np.ndarray, rows: Any, num_episodes: int,
                 threshold: float, max_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """The codes an episode switched to, in order: ``[N, max_codes, n_z]`` (padded with the last
    one) and their count ``[N]``; from packed rows' ``z, beta [R, T, ...]`` and ``rows.episode``."""
    codes = np.zeros((num_episodes, max_codes, z.shape[-1]), np.float32)
    count = np.zeros(num_episodes, int)
    episode = np.asarray(rows.episode)
    mask = np.asarray(rows.mask)
    for r in range(z.shape[0]):
        for t in range(z.shape[1]):
            n = episode[r, t]
            if not mask[r, t] or n < 0 or n >= num_episodes:
                continue
            start = t == 0 or episode[r, t - 1] != n
            if (start or beta[r, t] >= threshold) and count[n] < max_codes:
                codes[n, count[n]:] = z[r, t]  # also pads the rest with it
                count[n] += 1
    return codes, count


def same_task_partner(task_id: np.ndarray, seed: int = 0) -> np.ndarray:
    """``task_id [N] -> partner [N]``: for each episode another episode of the same task (a random
    cyclic shift within each task's episodes, so no episode is its own partner unless it is the only
    one of its task)."""
    rng = np.random.default_rng(seed)
    partner = np.arange(len(task_id))
    for task in np.unique(task_id):
        members = rng.permutation(np.flatnonzero(task_id == task))
        partner[members] = np.roll(members, 1)
    return partner


@functools.partial(jax.jit, static_argnames=("spec",))
def _replay(frozen, codes, layouts, keys, spec):
    def one(code_seq, layout, key):
        agent, objects, walls, task_id = layout
        env_state = gridworld.layout_state(agent, objects, walls, task_id, spec.env)
        _, state = internal_env.reset(key, frozen, spec, env_state)

        def decide(state, z):
            _, state, _, _, _ = internal_env.step(frozen, state, z, spec)
            return state, None

        state, _ = jax.lax.scan(decide, state, code_seq)
        return state.env_state.success, state.env_state.progress

    return jax.vmap(one)(codes, layouts, keys)


def replay(codes: np.ndarray, episodes: Any, frozen: Frozen,
           spec: internal_env.InternalEnvSpec, key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """Each recorded episode's start (layout, task), played by the frozen base model steered by
    ``codes [N, K, n_z]``, the k-th code chosen at the k-th switch: ``(success [N], progress [N])``.
    With the codes the metacontroller inferred for the expert episode, success means the steered
    model reproduced that episode's subgoal order."""
    n = codes.shape[0]
    layouts = (jnp.asarray(episodes.agent_cells[:n, 0]), jnp.asarray(episodes.object_cells[:n]),
               jnp.asarray(episodes.wall_cells[:n]), jnp.asarray(episodes.task_id[:n]))
    success, progress = _replay(frozen, jnp.asarray(codes), layouts, jax.random.split(key, n),
                                spec)
    return np.asarray(success), np.asarray(progress)
