"""Phase 1 training (§C.1): next-action (and, with weight λ, next-observation) prediction.

The dataset lives on the device as packed rows of compact episodes; each step samples its batch
with a key folded from the step number and renders observations inside jit. ``train_steps`` runs many steps as one
``lax.scan``, so a run resumed from a checkpoint at any step boundary sees the same batches and
ends with the same parameters as an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from hrl_internal.data import expert, packing
from hrl_internal.models import backbone
from hrl_internal.models.backbone import ModelConfig
from hrl_internal.training import guards, losses, optim
from hrl_internal.utils import sharding


@dataclasses.dataclass(frozen=True)
class PretrainHyper:
    batch_size: int = 64
    learning_rate: float = 3e-4
    weight_decay: float = 0.03
    obs_loss_weight: float = 0.01  # λ
    grad_clip: float = 1.0  # global-norm clip; 0 disables
    skip_nonfinite: bool = False  # skip updates whose gradient is NaN/Inf (else the loop stops)
    # "constant" (the paper's); "anneal": constant, then a linear decay to 0 over the last
    # ``anneal_fraction`` of ``total_steps``; "cosine": linear warm-up over ``warmup_steps``, then
    # a cosine decay to 0 at ``total_steps``.
    schedule: str = "constant"
    warmup_steps: int = 0
    total_steps: int = 0
    anneal_fraction: float = 0.2
    # "sample": the expert's recorded action (the paper's); "expert": the expert's whole action
    # distribution at the step (gridworld only). The same minimiser, the Bayes predictive: the
    # recorded action is a draw from that distribution, so its cross-entropy has the same
    # expectation given the history, without the tie-break noise of a single draw.
    action_target: str = "sample"


SCHEDULES = ("constant", "anneal", "cosine")
ACTION_TARGETS = ("sample", "expert")


def expert_probs(rows: packing.PackedRows, env: Any) -> jax.Array:
    """``[batch, time, NUM_ACTIONS]`` the clean expert's action distribution at each slot."""
    return jax.vmap(jax.vmap(expert.action_probs, in_axes=(0, 0, 0, 0, None)),
                    in_axes=(0, 0, 0, 0, None))(rows.agent_cells, rows.object_cells,
                                                rows.wall_cells, rows.colours, env)


def expert_target_nll(action_logits: jax.Array, rows: packing.PackedRows, env: Any) -> jax.Array:
    """``[batch, time]`` cross-entropy of the predicted actions against ``expert_probs``."""
    return -jnp.sum(expert_probs(rows, env) * jax.nn.log_softmax(action_logits), axis=-1)


def learning_rate_schedule(peak: float, schedule: str, warmup_steps: int, total_steps: int,
                           anneal_fraction: float = 0.2) -> optax.ScalarOrSchedule:
    """The learning rate by step: ``peak`` throughout; ``peak`` then a linear decay to 0 over the
    last ``anneal_fraction`` of ``total_steps``; or warm-up then cosine decay to 0."""
    if schedule == "constant":
        return peak
    if schedule == "anneal":
        decay = min(max(1, round(anneal_fraction * total_steps)), max(total_steps, 1))
        return optax.join_schedules(
            [optax.constant_schedule(peak), optax.linear_schedule(peak, 0.0, decay)],
            [max(total_steps, 1) - decay])
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")
    return optax.warmup_cosine_decay_schedule(0.0, peak, max(warmup_steps, 1),
                                              max(total_steps, warmup_steps + 1), 0.0)


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array  # [] int32


def optimizer(hyper: PretrainHyper) -> optax.GradientTransformation:
    lr = learning_rate_schedule(hyper.learning_rate, hyper.schedule, hyper.warmup_steps,
                                hyper.total_steps, hyper.anneal_fraction)
    return optim.clipped_adamw(lr, hyper.weight_decay, hyper.grad_clip, hyper.skip_nonfinite)


def init_state(key: jax.Array, model: ModelConfig, hyper: PretrainHyper) -> TrainState:
    params = backbone.module(model).init(key, model)
    return TrainState(params, optimizer(hyper).init(params), jnp.zeros((), jnp.int32))


def loss_fn(params: Any, rows: packing.PackedRows | packing.DenseRows, model: ModelConfig,
            env: Any, obs_loss_weight: float, action_target: str = "sample"
            ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The phase-1 loss over a batch of packed rows; returns ``(loss, metrics)``.

    Means are over real steps (``rows.mask``), so packing changes no gradient's expectation.
    ``action_target`` (``PretrainHyper``) picks the action term; the metrics' ``action_nll`` is
    always that of the recorded actions.
    """
    obs, next_obs = packing.observations(rows, env)  # [B, S, obs] each
    outputs, _ = backbone.module(model).apply(params, obs, model, segments=rows.segments)
    mask = rows.mask.astype(jnp.float32)
    action_nll, obs_nll, quality = losses.sequence_losses(outputs, rows.actions, next_obs)
    action_loss = losses.masked_mean(action_nll, mask)
    # With λ = 0 the observation head is dead code, and jit drops it.
    obs_loss = losses.masked_mean(obs_nll, mask) if obs_loss_weight else jnp.zeros(())
    target_loss = action_loss
    if action_target == "expert":
        target_loss = losses.masked_mean(
            expert_target_nll(outputs["action_logits"], rows, env), mask)
    loss = target_loss + obs_loss_weight * obs_loss
    metrics = {"loss": loss, "action_nll": action_loss, "obs_nll": obs_loss}
    metrics.update({losses.QUALITY_METRICS[k]: losses.masked_mean(v, mask)
                    for k, v in quality.items()})
    return loss, metrics


@functools.partial(jax.jit, static_argnames=("model", "env", "hyper", "num_steps"))
def train_steps(state: TrainState, data: packing.PackedRows | packing.DenseRows,
                key: jax.Array, *, model: ModelConfig, env: Any, hyper: PretrainHyper,
                num_steps: int) -> tuple[TrainState, dict[str, jax.Array]]:
    """``num_steps`` AdamW updates as one ``lax.scan``; metrics are averaged over them, with
    ``nonfinite_steps`` / ``first_nonfinite_step`` for ``guards.check``.

    Step ``s`` draws its batch with ``fold_in(key, s)``: the run is a function of ``key`` alone.
    """
    opt = optimizer(hyper)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def update(state, _):
        batch = sharding.shard_batch(
            packing.sample_batch(data, jax.random.fold_in(key, state.step), hyper.batch_size))
        (_, metrics), grads = grad_fn(state.params, batch, model, env, hyper.obs_loss_weight,
                                       hyper.action_target)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        metrics["nonfinite"] = guards.step_flags(metrics["loss"], metrics["grad_norm"])
        return TrainState(params, opt_state, state.step + 1), metrics

    first_step = state.step
    state, metrics = jax.lax.scan(update, state, None, length=num_steps)
    return state, guards.summarise(metrics, first_step)


@functools.partial(jax.jit, static_argnames=("model", "env"))
def evaluate(params: Any, rows: packing.PackedRows | packing.DenseRows, *, model: ModelConfig,
             env: Any) -> dict[str, jax.Array]:
    """Mask-weighted loss and accuracy over ``rows`` (one batch; call per chunk and average)."""
    _, metrics = loss_fn(params, sharding.shard_batch(rows), model, env, 0.0)
    metrics["num_steps"] = jnp.sum(rows.mask)
    return metrics
