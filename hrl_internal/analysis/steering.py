"""Supervised subgoal controllers (§C.3): can a low-rank edit at layer l make the frozen base model
pursue a chosen subgoal?

One controller per subgoal (z = one-hot(subgoal), β ≡ 1) is trained at layer l on clean
demonstrations, the controller of the labelled subgoal applied at every step, the base model frozen.
Activated in the post-training order with ground-truth switching, they should solve a task the base
model alone essentially never completes.
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from hrl_internal.analysis import rollout
from hrl_internal.data import packing
from hrl_internal.envs import gridworld
from hrl_internal.envs.gridworld import EnvParams
from hrl_internal.models import intervention, transformer
from hrl_internal.models.transformer import TransformerConfig
from hrl_internal.training.pretrain import masked_mean, sample_batch, sequence_losses

NUM_SUBGOALS = 4


def loss_fn(controllers: dict[str, jax.Array], base: Any, rows: packing.PackedRows,
            model: TransformerConfig, env: EnvParams, layer: int) -> jax.Array:
    """Action NLL of the frozen base model steered by the labelled subgoal's controller."""
    obs, next_obs = packing.observations(rows, env)
    steer = intervention.subgoal_controller(controllers, jnp.asarray(rows.subgoals, jnp.int32))
    outputs, _ = transformer.apply(base, obs, model, segments=rows.segments,
                                   controller=lambda e, t: steer(e), layer=layer)
    action_nll, _, _ = sequence_losses(outputs, rows.actions, next_obs)
    return masked_mean(action_nll, rows.mask.astype(jnp.float32))


@functools.partial(jax.jit, static_argnames=("model", "env", "layer", "rank", "steps",
                                              "batch_size"))
def train(key: jax.Array, base: Any, rows: packing.PackedRows, *, model: TransformerConfig,
          env: EnvParams, layer: int, rank: int, steps: int, batch_size: int,
          learning_rate: float) -> tuple[dict[str, jax.Array], jax.Array]:
    """Trains the subgoal controllers at ``layer``; returns them and the loss per step."""
    init_key, batch_key = jax.random.split(key)
    controllers = intervention.init_subgoal_controllers(init_key, NUM_SUBGOALS, model.d_model, rank)
    opt = optax.adam(learning_rate)
    base = jax.lax.stop_gradient(base)

    def update(carry, step_key):
        controllers, opt_state = carry
        batch = sample_batch(rows, step_key, batch_size)
        loss, grads = jax.value_and_grad(loss_fn)(controllers, base, batch, model, env, layer)
        updates, opt_state = opt.update(grads, opt_state, controllers)
        return (optax.apply_updates(controllers, updates), opt_state), loss

    (controllers, _), losses = jax.lax.scan(update, (controllers, opt.init(controllers)),
                                            jax.random.split(batch_key, steps))
    return controllers, losses


def ground_truth_switching(controllers: dict[str, jax.Array], e: jax.Array,
                           state: gridworld.EnvState) -> jax.Array:
    """Applies the controller of the subgoal the env says is next (labels, analysis only)."""
    return intervention.subgoal_controller(controllers, gridworld.current_subgoal(state))(e)


def steered_rollout(key: jax.Array, base: Any, controllers: dict[str, jax.Array],
                    model: TransformerConfig, env: EnvParams, layer: int, num_episodes: int
                    ) -> rollout.RolloutResult:
    """Episodes of the steered model on ``env``'s task set (success, length, colours visited)."""
    return rollout.rollout(key, base, model, env, num_episodes, layer=layer,
                           intervene=ground_truth_switching, intervene_params=controllers)
