"""Supervised subgoal controllers (§C.3): can a low-rank edit at layer l make the frozen base model
pursue a chosen subgoal?

One controller per subgoal (z = one-hot(subgoal), β ≡ 1) is trained at layer l on clean
demonstrations, the controller of the labelled subgoal applied at every step, the base model frozen.
Activated in the post-training order with ground-truth switching, they should solve a task the base
model alone essentially never completes.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from hrl_internal.analysis import rollout
from hrl_internal.data import packing
from hrl_internal.envs import gridworld
from hrl_internal.envs.gridworld import EnvParams
from hrl_internal.models import backbone, intervention, transformer
from hrl_internal.models.transformer import TransformerConfig
from hrl_internal.data.packing import sample_batch
from hrl_internal.training.losses import masked_mean, sequence_losses

NUM_SUBGOALS = 4


def layer_controllers(controllers: dict[str, jax.Array], i: int) -> dict[str, jax.Array]:
    """The ``i``-th layer's controllers from ``train``'s stacked ``{a [n_layers, G, r, d], ...}``."""
    return jax.tree.map(lambda x: x[i], controllers)


def loss_fn(controllers: dict[str, jax.Array], base: Any, rows: packing.PackedRows,
            model: TransformerConfig, env: EnvParams, layers: tuple[int, ...],
            start_steps: int = 0, start_weight: float = 1.0, forget: str = "none") -> jax.Array:
    """``[len(layers)]`` action NLL of the frozen base model steered at each layer of ``layers``
    (ascending) by the labelled subgoal's controller, ``controllers`` stacked over layers.

    ``start_steps > 0`` weights the first ``start_steps`` steps of every subgoal by
    ``start_weight`` (a diagnostic, not the paper's loss: the steps where a new subgoal must be
    written are few among those where the history already names it). ``forget`` (``lower``,
    ``upper``, ``both``; a diagnostic) restricts the attention of the blocks below each layer,
    above it or all of them to the current subgoal's steps (``packing.subgoal_segments``), as
    ``rollout.rollout``'s ``forget`` does when acting.

    The blocks below a layer never see its edit, so the unedited stream is computed once and shared
    by every layer's pass; only the blocks above each layer run (and are differentiated) per layer.
    """
    chex.assert_shape(controllers["a"], (len(layers), NUM_SUBGOALS, None, model.d_model))
    backbone.check_forget(forget)
    obs, next_obs = packing.observations(rows, env)
    subgoals = jnp.asarray(rows.subgoals, jnp.int32)  # [B, T]
    mask = rows.mask.astype(jnp.float32)
    if start_steps > 0:
        mask = mask * jnp.where(packing.steps_into_subgoal(rows) < start_steps, start_weight, 1.0)
    lower, upper = packing.forgetting_segments(rows, forget)
    e, below = transformer.embed(base, obs, model), 0
    losses = []
    for i, layer in enumerate(layers):
        e, below = backbone.run_blocks(base, e, below, layer, model, lower), layer
        steer = intervention.subgoal_controller(layer_controllers(controllers, i), subgoals)
        top = backbone.run_blocks(base, steer(e), layer, model.num_layers, model, upper)
        action_nll, _, _ = sequence_losses(backbone.heads(base, top, model), rows.actions,
                                           next_obs)
        losses.append(masked_mean(action_nll, mask))
    return jnp.stack(losses)


class SteerState(NamedTuple):
    """Every layer's controllers (stacked), their Adam state and the steps taken."""

    controllers: dict[str, jax.Array]  # {a [n_layers, G, r, d], b [n_layers, G, d, r]}
    opt_state: Any
    step: jax.Array  # [] int32


def optimizer(learning_rate: float) -> optax.GradientTransformation:
    return optax.adam(learning_rate)


def init_state(key: jax.Array, model: TransformerConfig, layers: tuple[int, ...], rank: int,
               learning_rate: float, affine: bool = False) -> SteerState:
    """Identity controllers (``b = 0``) for every layer of ``layers`` (ascending, distinct), with
    an offset per subgoal if ``affine`` (a diagnostic form: ``init_subgoal_controllers``)."""
    if list(layers) != sorted(set(layers)):
        raise ValueError(f"layers must be ascending and distinct, got {layers}")
    controllers = jax.vmap(lambda k: intervention.init_subgoal_controllers(
        k, NUM_SUBGOALS, model.d_model, rank, affine))(jax.random.split(key, len(layers)))
    return SteerState(controllers, optimizer(learning_rate).init(controllers),
                      jnp.zeros((), jnp.int32))


@functools.partial(jax.jit, static_argnames=("model", "env", "layers", "batch_size",
                                              "learning_rate", "num_steps", "start_steps",
                                              "start_weight", "forget"))
def train_steps(state: SteerState, base: Any, rows: packing.PackedRows, key: jax.Array, *,
                model: TransformerConfig, env: EnvParams, layers: tuple[int, ...],
                batch_size: int, learning_rate: float, num_steps: int, start_steps: int = 0,
                start_weight: float = 1.0, forget: str = "none"
                ) -> tuple[SteerState, jax.Array]:
    """``num_steps`` updates of every layer's controllers, on the same batches (step ``s`` draws
    with ``fold_in(key, s)``: chunked or resumed runs equal one uninterrupted run). Each layer's
    controllers see only their own loss (the summed loss separates by layer, and Adam is per
    parameter), so this is training each layer alone. Returns the state and the loss
    ``[num_steps, n_layers]``."""
    opt = optimizer(learning_rate)
    base = jax.lax.stop_gradient(base)

    def update(state, _):
        batch = sample_batch(rows, jax.random.fold_in(key, state.step), batch_size)
        losses, vjp = jax.vjp(lambda c: loss_fn(c, base, batch, model, env, layers,
                                                start_steps, start_weight, forget),
                              state.controllers)
        grads, = vjp(jnp.ones_like(losses))  # d(sum of the layers' losses): separable
        updates, opt_state = opt.update(grads, state.opt_state, state.controllers)
        return SteerState(optax.apply_updates(state.controllers, updates), opt_state,
                          state.step + 1), losses

    return jax.lax.scan(update, state, None, length=num_steps)


def train(key: jax.Array, base: Any, rows: packing.PackedRows, *, model: TransformerConfig,
          env: EnvParams, layers: tuple[int, ...], rank: int, steps: int, batch_size: int,
          learning_rate: float, affine: bool = False, start_steps: int = 0,
          start_weight: float = 1.0, forget: str = "none"
          ) -> tuple[dict[str, jax.Array], jax.Array]:
    """All of ``train_steps`` in one call: the controllers stacked over layers and the loss
    ``[steps, n_layers]``."""
    init_key, batch_key = jax.random.split(key)
    state = init_state(init_key, model, layers, rank, learning_rate, affine)
    state, losses = train_steps(state, base, rows, batch_key, model=model, env=env, layers=layers,
                                batch_size=batch_size, learning_rate=learning_rate,
                                num_steps=steps, start_steps=start_steps,
                                start_weight=start_weight, forget=forget)
    return state.controllers, losses


@functools.partial(jax.jit, static_argnames=("model", "env", "layers", "forget"))
def evaluate(controllers: dict[str, jax.Array], base: Any, rows: packing.PackedRows, *,
             model: TransformerConfig, env: EnvParams, layers: tuple[int, ...],
             forget: str = "none") -> jax.Array:
    """``[len(layers)]`` steered action NLL on ``rows`` (e.g. held out)."""
    return loss_fn(controllers, base, rows, model, env, layers, forget=forget)


def ground_truth_switching(controllers: dict[str, jax.Array], e: jax.Array,
                           state: gridworld.EnvState) -> jax.Array:
    """Applies the controller of the subgoal the env says is next (labels, analysis only)."""
    return intervention.subgoal_controller(controllers, gridworld.current_subgoal(state))(e)


def steered_rollout(key: jax.Array, base: Any, controllers: dict[str, jax.Array],
                    model: TransformerConfig, env: EnvParams, layer: int, num_episodes: int,
                    greedy: bool = False, forget: str = "none") -> rollout.RolloutResult:
    """Episodes of the steered model on ``env``'s task set (success, length, colours visited),
    its actions sampled (or its most likely ones, ``greedy``); ``forget``: ``rollout.rollout``'s."""
    return rollout.rollout(key, base, model, env, num_episodes, layer=layer,
                           intervene=ground_truth_switching, intervene_params=controllers,
                           greedy=greedy, forget=forget)
