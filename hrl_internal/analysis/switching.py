"""Does the switching gate β fire when a subgoal is reached? (Fig. 6, A3)

A *switch* is a step where β_t ≥ threshold, not counting an episode's first step (where the first
code is always chosen). A *true boundary* is a step whose subgoal label differs from the previous
step's in the same episode. Switches match boundaries within ``tolerance`` steps, one to one,
greedily in time order; precision, recall and F1 follow. Host-side numpy: analysis only, except
``segment_starts``, which a jitted loss reads too.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from hrl_internal.models.metacontroller import resets_from_segments


def _episode_starts(segments: np.ndarray) -> np.ndarray:
    return np.asarray(resets_from_segments(np.asarray(segments)))


def switch_events(beta: np.ndarray, segments: np.ndarray, mask: np.ndarray,
                  threshold: float = 0.5) -> np.ndarray:
    """``[R, T]`` bool: β crossed the threshold at a real step that does not start an episode."""
    return (np.asarray(beta) >= threshold) & np.asarray(mask) & ~_episode_starts(
        np.asarray(segments))


def segment_starts(subgoals: jax.Array, segments: jax.Array) -> jax.Array:
    """``[..., T]`` bool: the first step of a segment, an episode's first step or a step whose
    subgoal label differs from the previous step's (jnp: also inside jit)."""
    changed = jnp.concatenate([jnp.zeros(subgoals.shape[:-1] + (1,), bool),
                               subgoals[..., 1:] != subgoals[..., :-1]], axis=-1)
    return resets_from_segments(segments) | changed


def true_boundaries(subgoals: np.ndarray, segments: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[R, T]`` bool: the subgoal label changed at this real step of an episode (a segment start
    that does not start the episode)."""
    segments = np.asarray(segments)
    return (np.asarray(segment_starts(jnp.asarray(subgoals), jnp.asarray(segments)))
            & np.asarray(mask) & ~_episode_starts(segments))


def match_counts(predicted: np.ndarray, truth: np.ndarray, segments: np.ndarray,
                 tolerance: int) -> tuple[int, int, int]:
    """``(matched, num_predicted, num_true)``: one-to-one matches within ``tolerance`` steps of the
    same episode, each prediction taking the earliest unmatched boundary in reach."""
    matched = 0
    for row in range(predicted.shape[0]):
        true_times = list(np.flatnonzero(truth[row]))
        for t in np.flatnonzero(predicted[row]):
            for j, u in enumerate(true_times):
                if abs(int(u) - int(t)) <= tolerance and segments[row, u] == segments[row, t]:
                    matched += 1
                    del true_times[j]
                    break
    return matched, int(predicted.sum()), int(truth.sum())


def switch_scores(beta: np.ndarray, subgoals: np.ndarray, segments: np.ndarray,
                  mask: np.ndarray, *, threshold: float = 0.5, tolerance: int = 2
                  ) -> dict[str, float]:
    """Precision, recall, F1 of switches against subgoal boundaries, and switches per episode
    (predicted and true). Inputs are packed rows ``[R, T]``."""
    segments, mask = np.asarray(segments), np.asarray(mask, bool)
    predicted = switch_events(beta, segments, mask, threshold)
    truth = true_boundaries(subgoals, segments, mask)
    matched, num_pred, num_true = match_counts(predicted, truth, segments, tolerance)
    precision = matched / num_pred if num_pred else 0.0
    recall = matched / num_true if num_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    episodes = int((_episode_starts(segments) & mask).sum())
    return {"precision": precision, "recall": recall, "f1": f1,
            "switches_per_episode": num_pred / max(episodes, 1),
            "true_switches_per_episode": num_true / max(episodes, 1),
            "beta_binary_fraction": float(np.mean(
                (np.minimum(np.asarray(beta), 1 - np.asarray(beta)) < 0.1)[mask]))}
