"""The RL training loop shared by every method: collect a batch of episodes with the current params,
normalise their returns, take ``update_epochs`` AdamW steps on the clipped surrogate; repeat.

``train_steps`` runs ``num_steps`` such updates as one ``lax.scan`` inside ``jax.jit``, vmapped over
seeds (the leading axis of the state and keys). Update ``s`` of a seed uses ``fold_in(key, s)``,
so a run resumed from a checkpoint continues exactly as an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from hrl_internal.rl import episodes, internal_rl, raw_action
from hrl_internal.training import guards
from hrl_internal.training.optim import clipped_adamw

# How a method acts: on codes through the internal env, or on the base model's own actions.
LEARNERS = {"codes": internal_rl, "actions": raw_action}


@dataclasses.dataclass(frozen=True)
class RLHyper:
    learning_rate: float = 3e-4
    weight_decay: float = 0.0
    clip: float = 0.2
    update_epochs: int = 2
    grad_clip: float = 1.0
    skip_nonfinite: bool = False  # skip updates whose gradient is NaN/Inf (else the loop stops)


class RLState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array  # [] int32 updates done


def optimizer(hyper: RLHyper) -> optax.GradientTransformation:
    return clipped_adamw(hyper.learning_rate, hyper.weight_decay, hyper.grad_clip,
                         hyper.skip_nonfinite)


def init_state(params: Any, hyper: RLHyper) -> RLState:
    return RLState(params, optimizer(hyper).init(params), jnp.zeros((), jnp.int32))


def update(state: RLState, frozen: Any, key: jax.Array, *, learner: str, spec: Any,
           hyper: RLHyper) -> tuple[RLState, dict[str, jax.Array]]:
    """One rollout (``spec`` sets its slots and ticks) and ``update_epochs`` gradient steps."""
    module = LEARNERS[learner]
    batch, stats = module.rollout(state.params, frozen, jax.random.fold_in(key, state.step), spec)
    opt = optimizer(hyper)
    grad_fn = jax.value_and_grad(module.rl_loss, has_aux=True)

    def epoch(carry, _):
        params, opt_state = carry
        (loss, metrics), grads = grad_fn(params, batch, spec, hyper.clip)
        updates, opt_state = opt.update(grads, opt_state, params)
        metrics = {**metrics, "loss": loss, "grad_norm": optax.tree.norm(grads)}
        return (optax.apply_updates(params, updates), opt_state), metrics

    (params, opt_state), metrics = jax.lax.scan(epoch, (state.params, state.opt_state), None,
                                                length=hyper.update_epochs)
    nonfinite = jnp.max(guards.step_flags(metrics["loss"], metrics["grad_norm"]))
    metrics = {k: v[-1] for k, v in metrics.items()}
    metrics["nonfinite"] = nonfinite
    metrics.update(episode_metrics(stats))
    return RLState(params, opt_state, state.step + 1), metrics


def episode_metrics(stats: episodes.Stats) -> dict[str, jax.Array]:
    n = jnp.maximum(stats.episodes, 1).astype(jnp.float32)
    return {"success": stats.successes / n, "progress": stats.progress / n,
            "episodes": stats.episodes, "env_steps": stats.env_steps,
            "decisions": stats.decisions,
            "steps_per_decision": stats.env_steps / jnp.maximum(stats.decisions, 1)}


@functools.partial(jax.jit, static_argnames=("learner", "spec", "hyper", "num_steps"))
def train_steps(state: RLState, frozen: Any, keys: jax.Array, *, learner: str, spec: Any,
                hyper: RLHyper, num_steps: int) -> tuple[RLState, dict[str, jax.Array]]:
    """``num_steps`` updates for every seed: ``state`` and ``keys [S, 2]`` have a leading seed axis.

    Returns the new state and metrics ``[S, num_steps]`` per update (the learning curve).
    """
    def one_seed(state, key):
        return jax.lax.scan(
            lambda s, _: update(s, frozen, key, learner=learner, spec=spec, hyper=hyper),
            state, None, length=num_steps)

    return jax.vmap(one_seed)(state, keys)


@functools.partial(jax.jit, static_argnames=("learner", "spec"))
def evaluate(params: Any, frozen: Any, keys: jax.Array, *, learner: str, spec: Any,
             task_ids: jax.Array | None = None) -> episodes.Stats:
    """One rollout per seed (``params`` and ``keys [S, 2]`` with a seed axis): totals ``[S]``.
    ``task_ids [S]`` fixes each seed's task (an index into the env's task set)."""
    module = LEARNERS[learner]
    if task_ids is None:
        return jax.vmap(lambda p, k: module.rollout(p, frozen, k, spec)[1])(params, keys)
    return jax.vmap(lambda p, k, t: module.rollout(p, frozen, k, spec, t)[1])(
        params, keys, task_ids)
