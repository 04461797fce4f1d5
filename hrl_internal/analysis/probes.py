"""Linear probing of the residual stream (§C.2): does layer l linearly encode the current subgoal?

One softmax probe per layer, all layers trained at once (``vmap`` over the layer axis) on residuals
of training episodes, scored on held-out ones.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hrl_internal.data import packing
from hrl_internal.envs.gridworld import EnvParams
from hrl_internal.models import transformer
from hrl_internal.models.transformer import TransformerConfig


class ProbeData(NamedTuple):
    features: jax.Array  # [M, num_layers + 1, d_model], one row per real step
    labels: jax.Array  # [M] int32, the subgoal pursued at that step


def collect(params: Any, rows: packing.PackedRows, model: TransformerConfig, env: EnvParams,
            chunk: int = 64) -> ProbeData:
    """Residuals at every layer for every real step of ``rows`` (computed in chunks of rows)."""
    forward = jax.jit(lambda p, r: transformer.apply(
        p, packing.observations(r, env)[0], model, segments=r.segments)[1])
    features, labels = [], []
    for start in range(0, rows.num_rows, chunk):
        part = jax.tree.map(lambda a: a[start:start + chunk], rows)
        residuals = np.asarray(forward(params, part))
        mask = np.asarray(part.mask)
        features.append(residuals[mask])
        labels.append(np.asarray(part.subgoals)[mask])
    return ProbeData(jnp.asarray(np.concatenate(features)),
                     jnp.asarray(np.concatenate(labels), jnp.int32))


def _logits(probe: dict[str, jax.Array], features: jax.Array) -> jax.Array:
    """``[M, L+1, d] -> [M, L+1, C]``: each layer's probe on its own residual."""
    x = (features - probe["mean"]) / probe["std"]
    return jnp.einsum("mld,ldc->mlc", x, probe["w"]) + probe["b"]


@functools.partial(jax.jit, static_argnames=("num_classes", "steps", "batch_size"))
def train(key: jax.Array, data: ProbeData, *, num_classes: int, steps: int, batch_size: int,
          learning_rate: float) -> dict[str, jax.Array]:
    """Softmax-regression probes for all layers (Adam, cross-entropy), features standardised."""
    _, layers, d = data.features.shape
    probe = {"w": jnp.zeros((layers, d, num_classes)), "b": jnp.zeros((layers, num_classes)),
             "mean": data.features.mean(0), "std": data.features.std(0) + 1e-6}
    opt = optax.adam(learning_rate)
    trainable = {"w": probe["w"], "b": probe["b"]}

    def loss(trainable, x, y):
        logits = _logits({**probe, **trainable}, x)
        return optax.softmax_cross_entropy_with_integer_labels(
            logits, y[:, None].repeat(layers, 1)).mean()

    def update(carry, step_key):
        trainable, opt_state = carry
        index = jax.random.randint(step_key, (batch_size,), 0, data.labels.shape[0])
        grads = jax.grad(loss)(trainable, data.features[index], data.labels[index])
        updates, opt_state = opt.update(grads, opt_state, trainable)
        return (optax.apply_updates(trainable, updates), opt_state), None

    (trainable, _), _ = jax.lax.scan(update, (trainable, opt.init(trainable)),
                                     jax.random.split(key, steps))
    return {**probe, **trainable}


@jax.jit
def accuracy(probe: dict[str, jax.Array], data: ProbeData) -> jax.Array:
    """``[L+1]`` accuracy of each layer's probe."""
    predicted = jnp.argmax(_logits(probe, data.features), -1)
    return jnp.mean(predicted == data.labels[:, None], axis=0)


def majority_baseline(train_labels: jax.Array, test_labels: jax.Array) -> float:
    """Accuracy of always answering the most frequent training label."""
    majority = np.bincount(np.asarray(train_labels)).argmax()
    return float(np.mean(np.asarray(test_labels) == majority))
