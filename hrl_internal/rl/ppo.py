"""The learner's loss (§C.5.2): a PPO clipped surrogate with a critic-free advantage.

A_τ = (R(τ) - mean_batch R) / (std_batch R + 1e-3), one value per episode (GRPO without groups),
shared by every decision of the episode. Entropy bonus 0, as in the paper.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

ADVANTAGE_EPS = 1e-3


def advantages(returns: jax.Array) -> jax.Array:
    """``returns [B] -> [B]``, batch-normalised episode returns."""
    return (returns - jnp.mean(returns)) / (jnp.std(returns) + ADVANTAGE_EPS)


def clipped_surrogate(log_prob: jax.Array, old_log_prob: jax.Array, advantage: jax.Array,
                      mask: jax.Array, clip: float) -> tuple[jax.Array, dict[str, jax.Array]]:
    """PPO's loss averaged over the masked decisions.

    Args:
      log_prob, old_log_prob, mask: [T, B] per decision (mask: a decision was taken there).
      advantage: [T, B], the advantage of the episode each decision belongs to.
    """
    mask = mask.astype(jnp.float32)
    count = jnp.maximum(jnp.sum(mask), 1.0)
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    adv = advantage
    surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - clip, 1.0 + clip) * adv)
    loss = -jnp.sum(surrogate * mask) / count
    metrics = {
        "approx_kl": jnp.sum(((ratio - 1.0) - log_ratio) * mask) / count,
        "clip_fraction": jnp.sum((jnp.abs(ratio - 1.0) > clip) * mask) / count,
    }
    return loss, metrics
