"""Per-step loss terms of the sequence model's outputs, shared by every phase that scores them
(pretraining, the metacontroller, supervised steering): the next-action NLL with its quality
figure (accuracy or squared error) and the next-observation NLL, each ``[batch, time]``, and the
mean over real (unpadded) steps.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from hrl_internal.models import hawk


def action_losses(action_logits: jax.Array, actions: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-step ``(action_nll, correct)``, each ``[batch, time]``."""
    logp = jax.nn.log_softmax(action_logits)
    action_nll = -jnp.take_along_axis(logp, actions[..., None].astype(jnp.int32), -1)[..., 0]
    return action_nll, jnp.argmax(action_logits, -1) == actions


def action_terms(outputs: dict[str, jax.Array], actions: jax.Array
                 ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Per-step ``(action_nll, quality)``, each ``[batch, time]``: ``quality`` holds ``correct``
    (categorical actions) or ``squared_error`` (Gaussian actions, mean over action dims)."""
    if "action_mean" in outputs:
        squared_error = jnp.mean((outputs["action_mean"] - actions) ** 2, axis=-1)
        return hawk.action_nll(outputs, actions), {"squared_error": squared_error}
    action_nll, correct = action_losses(outputs["action_logits"], actions)
    return action_nll, {"correct": correct}


def sequence_losses(outputs: dict[str, jax.Array], actions: jax.Array, next_obs: jax.Array
                    ) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """Per-step ``(action_nll, obs_nll, quality)``, each ``[batch, time]`` (see ``action_terms``).

    Gridworld: the next observation is a set of independent bits (per-cell one-hot channels), so
    its negative log-likelihood is the summed binary cross-entropy. Ant: a unit-variance Gaussian
    (``hawk.obs_nll``).
    """
    action_nll, quality = action_terms(outputs, actions)
    if "obs_mean" in outputs:
        return action_nll, hawk.obs_nll(outputs, next_obs), quality
    obs_nll = optax.sigmoid_binary_cross_entropy(outputs["obs_logits"], next_obs).sum(-1)
    return action_nll, obs_nll, quality


QUALITY_METRICS = {"correct": "action_accuracy", "squared_error": "action_mse"}


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)
