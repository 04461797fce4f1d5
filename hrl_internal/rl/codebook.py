"""A codebook of the metacontroller's own codes for internal RL (not the paper's).

The paper's policy draws continuous codes from a Gaussian head. On a long task whose first
success is rare that head has to hit, at each of several decisions, the small region of code
space that means the right subgoal, and on the 12-colour task it finds no success in ~95k
episodes per seed over codes that do name subgoals (README, "Internal RL over the metacontroller's
own codes"). The codebook gives the policy a categorical head over ``K`` codes instead: the
k-means centroids of the codes the metacontroller switched to on expert episodes (no label: the
codes at each episode's start and wherever β crossed the threshold, under the hard gate internal
RL uses). A choice is the one-hot ``c [K]``; the decoder receives ``z = c @ codebook``.
"""
from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.jit, static_argnames=("k", "iters"))
def kmeans(key: jax.Array, points: jax.Array, k: int, iters: int = 50) -> jax.Array:
    """``points [N, n] -> centroids [k, n]``: k-means++ seeding, then ``iters`` Lloyd steps (a
    centroid left without points stays where it was)."""
    chex.assert_rank(points, 2)
    n = points.shape[0]
    if n < k:
        raise ValueError(f"k-means needs at least k={k} points, got {n}")

    def sq_dist(centroids):
        return jnp.sum((points[:, None, :] - centroids[None, :, :]) ** 2, axis=-1)  # [N, k]

    first = points[jax.random.randint(jax.random.fold_in(key, 0), (), 0, n)]
    centroids = jnp.zeros((k, points.shape[1]), points.dtype).at[:].set(first)

    def seed(i, centroids):
        # Distances to the centroids chosen so far (rows >= i still hold the first point).
        d = jnp.min(sq_dist(centroids), axis=1)
        pick = jax.random.categorical(jax.random.fold_in(key, i), jnp.log(d + 1e-30))
        return centroids.at[i].set(points[pick])

    centroids = jax.lax.fori_loop(1, k, seed, centroids)

    def lloyd(_, centroids):
        assign = jax.nn.one_hot(jnp.argmin(sq_dist(centroids), axis=1), k, dtype=points.dtype)
        counts = assign.sum(0)
        means = (assign.T @ points) / jnp.maximum(counts, 1.0)[:, None]
        return jnp.where(counts[:, None] > 0, means, centroids)

    return jax.lax.fori_loop(0, iters, lloyd, centroids)


def lookup(codebook: jax.Array, choice: jax.Array) -> jax.Array:
    """``(codebook [K, n_z], choice [..., K] one-hot) -> z [..., n_z]``."""
    chex.assert_equal(codebook.shape[0], choice.shape[-1])
    return choice @ codebook


def switch_mask(beta: np.ndarray, episode: np.ndarray, mask: np.ndarray, threshold: float
                ) -> np.ndarray:
    """``[R, T]`` bool: the steps of packed rows where a code is chosen under the hard gate, each
    episode's first step and every step with ``beta >= threshold`` (``beta, episode, mask``
    ``[R, T]``)."""
    episode, mask = np.asarray(episode), np.asarray(mask, bool)
    start = np.ones_like(mask)
    start[:, 1:] = episode[:, 1:] != episode[:, :-1]
    return mask & (start | (np.asarray(beta) >= threshold))


def purity(points: np.ndarray, labels: np.ndarray, book: np.ndarray) -> float:
    """A diagnosis that reads labels (the learner never does): the share of ``points [N, n]``
    whose nearest code of ``book [K, n]`` has their label ``labels [N]`` as its most frequent one
    (1: every code stands for one label; the majority label's share: codes that ignore it)."""
    nearest = np.argmin(((points[:, None] - book[None]) ** 2).sum(-1), axis=1)
    hits = sum(np.bincount(labels[nearest == c]).max() for c in np.unique(nearest))
    return float(hits / len(labels))
