"""PPO for the ant-pinpad expert (§C.1.1, Table A3; the actor: ``data/ant_expert.py``): one
goal-conditioned agent for every task.

Its training reward adds ``direction_weight`` × (torso velocity · shortest-path direction) to the
sparse task reward, so walking the right way pays at every step while a task is far from solved; a small bonus per step
survived (``alive_bonus``) and a cost on squared torques (``control_cost``), as in brax's ant, make
falling over and jumping (the torso above 1 m ends the episode) cost something. Training starts
under walking rules (the environment's ``end_on_violation=False``, chosen by the caller) because
under the full rules a flailing ant leaves its start cell within ~30 steps: too short to learn a
gait from.

The learner is plain PPO with GAE and a separate value network. Every jitted call
(``train_steps``) starts its environments afresh and runs ``num_updates`` updates as one
``lax.scan``: the training state is then only parameters, optimiser moments and a step counter,
so a run resumed from any checkpoint equals an uninterrupted one bit for bit. brax's PPO
(``brax.training.agents.ppo``) runs its own outer loop, environment wrappers and checkpointing,
and keeps its environments across calls: it does not fit that resume contract, the expert's
shaped reward on ``ant_pinpad.step``, or the launcher's phase loop, so this is written out here.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from hrl_internal.data import ant_expert
from hrl_internal.data.ant_expert import Params
from hrl_internal.envs import ant_pinpad
from hrl_internal.envs.ant_pinpad import AntEnvParams, AntState
from hrl_internal.training import guards
from hrl_internal.training.optim import clipped_adamw
from hrl_internal.utils import sharding

RESET_TAG = 2**31 - 1  # fold_in tag of the key stream that starts each call's environments


@dataclasses.dataclass(frozen=True)
class ExpertHyper:
    num_envs: int = 128  # environments stepped together
    unroll: int = 32  # steps per environment between updates
    epochs: int = 4  # passes over each rollout
    minibatches: int = 4  # per epoch
    learning_rate: float = 3e-4
    weight_decay: float = 0.03
    entropy: float = 3e-4
    discount: float = 0.97
    gae_lambda: float = 0.95
    clip: float = 0.2
    value_weight: float = 0.5
    grad_clip: float = 1.0
    direction_weight: float = 1.0  # intrinsic reward: velocity · shortest-path direction
    # Per step alive, as brax's ant "healthy reward" (1.0): with 0.25, a lunging gait that
    # ended on torso height within ~3 s in half of its episodes was what PPO found in 600 updates.
    alive_bonus: float = 1.0
    task_reward: float = 10.0  # scale of the sparse reward (1 on completing the task)
    control_cost: float = 0.5  # times the squared torques, summed (brax's ant: 0.5)
    # Per breach of a rule (ant_pinpad's ``violation``: entering a wrong colour or the wall,
    # leaving the grid), charged once per breach, not per step spent off the grid (a per-step
    # charge made ending the episode by falling the cheaper way out). Off by default: at 5 the
    # walking-rules phase learned to stand still first (99% of its episodes hit the time limit
    # after 300 updates; 0.3% successes against 6.3% without), and the finished expert was no
    # better (one seed each; README, ant-pinpad).
    violation_cost: float = 0.0
    hidden: int = 256
    # Noise of std 0.6 (log -0.5) makes the ant jump above 1 m within ~50 steps; 0.3 gives
    # episodes ~3x longer to learn from.
    init_log_std: float = -1.2
    skip_nonfinite: bool = False

    def __post_init__(self):
        if (self.num_envs * self.unroll) % self.minibatches:
            raise ValueError(f"num_envs * unroll ({self.num_envs * self.unroll}) must divide into "
                             f"minibatches ({self.minibatches})")


class ExpertState(NamedTuple):
    params: Any  # {"policy", "value"}
    opt_state: Any
    step: jax.Array  # [] int32, updates done


class Transition(NamedTuple):
    obs: jax.Array  # [..., expert_obs_size]
    action: jax.Array  # [..., A], the Gaussian sample (before clipping to the actuator range)
    log_prob: jax.Array  # [...]
    value: jax.Array  # [...]
    reward: jax.Array  # [...]
    done: jax.Array  # [...] bool, the episode ended at this step
    success: jax.Array  # [...] bool
    task_reward: jax.Array  # [...], the sparse reward alone
    termination: jax.Array  # [...] int32, why the episode ended (ant_pinpad.TERMINATIONS)


def optimizer(hyper: ExpertHyper) -> optax.GradientTransformation:
    return clipped_adamw(hyper.learning_rate, hyper.weight_decay, hyper.grad_clip,
                         hyper.skip_nonfinite)


def init_state(key: jax.Array, env: AntEnvParams, hyper: ExpertHyper) -> ExpertState:
    params = ant_expert.init_params(key, env, hyper.hidden, hyper.init_log_std)
    return ExpertState(params, optimizer(hyper).init(params), jnp.zeros((), jnp.int32))


def _env_step(state: AntState, action: jax.Array, env: AntEnvParams, hyper: ExpertHyper
              ) -> tuple[AntState, jax.Array]:
    """One step of one environment; returns ``(state, shaped reward)``."""
    direction = ant_pinpad.target_direction(state, env)
    torques = jnp.clip(action, -1.0, 1.0)
    nxt = ant_pinpad.step(state, torques, env)
    progress = jnp.dot(ant_pinpad.torso_velocity(nxt), direction)
    alive = (~nxt.done | nxt.success).astype(jnp.float32)
    effort = jnp.sum(jnp.square(torques))
    return nxt, (hyper.task_reward * nxt.reward + hyper.direction_weight * progress
                 + hyper.alive_bonus * alive - hyper.control_cost * effort
                 - hyper.violation_cost * nxt.violation.astype(jnp.float32))


def collect(params: Params, states: AntState, key: jax.Array, env: AntEnvParams,
            hyper: ExpertHyper) -> tuple[AntState, Transition, jax.Array]:
    """``unroll`` steps of ``num_envs`` environments; an ended episode restarts at once.

    Returns ``(states, transitions [unroll, num_envs], bootstrap values [num_envs])``.
    """
    def one(state, step_key):
        k_act, k_reset = jax.random.split(step_key)
        obs, action, log_prob = ant_expert.act(params, state, k_act, env, greedy=False)
        nxt, reward = _env_step(state, action, env, hyper)
        fresh = ant_pinpad.reset(k_reset, env)
        restarted = jax.tree.map(lambda a, b: jnp.where(nxt.done, a, b), fresh, nxt)
        return restarted, Transition(obs, action, log_prob, ant_expert.value(params, obs), reward,
                                     nxt.done, nxt.success, nxt.reward, nxt.termination)

    def tick(states, step_key):
        return jax.vmap(one)(states, jax.random.split(step_key, hyper.num_envs))

    states, transitions = jax.lax.scan(tick, states, jax.random.split(key, hyper.unroll))
    last = jax.vmap(
        lambda s: ant_expert.value(params, ant_expert.expert_observation(s, env)))(states)
    return states, transitions, last


def gae(transitions: Transition, last_value: jax.Array, hyper: ExpertHyper
        ) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimates and value targets, each ``[unroll, num_envs]``.

    The time limit is treated as a terminal state: the expert's observation has no clock, so
    bootstrapping across it would ask the critic for something it cannot see.
    """
    def back(carry, x):
        adv_next, value_next = carry
        reward, v, done = x
        live = 1.0 - done.astype(jnp.float32)
        delta = reward + hyper.discount * value_next * live - v
        adv = delta + hyper.discount * hyper.gae_lambda * live * adv_next
        return (adv, v), adv

    _, adv = jax.lax.scan(back, (jnp.zeros_like(last_value), last_value),
                          (transitions.reward, transitions.value, transitions.done), reverse=True)
    return adv, adv + transitions.value


def ppo_loss(params: Params, batch: Transition, advantage: jax.Array, target: jax.Array,
             hyper: ExpertHyper) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped surrogate + value regression − entropy bonus over a flat minibatch ``[n, ...]``."""
    mean, log_std = ant_expert.policy(params, batch.obs)
    log_prob = ant_expert.gaussian_log_prob(mean, log_std, batch.action)
    ratio = jnp.exp(log_prob - batch.log_prob)
    adv = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
    surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - hyper.clip, 1 + hyper.clip) * adv)
    value_loss = 0.5 * jnp.mean((ant_expert.value(params, batch.obs) - target) ** 2)
    entropy = jnp.sum(log_std + 0.5 * math.log(2.0 * math.pi * math.e))
    policy_loss = -jnp.mean(surrogate)
    loss = policy_loss + hyper.value_weight * value_loss - hyper.entropy * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy,
                  "clip_fraction": jnp.mean(jnp.abs(ratio - 1.0) > hyper.clip)}


def _update(state: ExpertState, env_states: AntState, key: jax.Array, env: AntEnvParams,
            hyper: ExpertHyper):
    k_collect, k_shuffle = jax.random.split(key)
    env_states, transitions, last = collect(state.params, env_states, k_collect, env, hyper)
    advantage, target = gae(transitions, last, hyper)
    n = hyper.num_envs * hyper.unroll
    flat = jax.tree.map(lambda a: a.reshape((n,) + a.shape[2:]),
                        (transitions, advantage, target))
    opt = optimizer(hyper)
    grad_fn = jax.value_and_grad(ppo_loss, has_aux=True)

    def minibatch(carry, index):
        params, opt_state = carry
        batch, adv, tgt = jax.tree.map(lambda a: a[index], flat)
        (loss, aux), grads = grad_fn(params, batch, adv, tgt, hyper)
        updates, opt_state = opt.update(grads, opt_state, params)
        aux = dict(aux, loss=loss, grad_norm=optax.tree.norm(grads))
        return (optax.apply_updates(params, updates), opt_state), aux

    def epoch(carry, epoch_key):
        order = jax.random.permutation(epoch_key, n).reshape(hyper.minibatches, -1)
        return jax.lax.scan(minibatch, carry, order)

    (params, opt_state), aux = jax.lax.scan(
        epoch, (state.params, state.opt_state), jax.random.split(k_shuffle, hyper.epochs))
    ended = transitions.done.astype(jnp.float32)
    metrics = {k: v[-1, -1] for k, v in aux.items()}
    metrics.update({
        "nonfinite": guards.step_flags(aux["loss"], aux["grad_norm"]).max(),
        "reward_per_step": transitions.reward.mean(),
        "episodes_ended": ended.sum(),
        "successes": (transitions.success & transitions.done).astype(jnp.float32).sum(),
        "ends": jnp.stack([jnp.sum(transitions.done & (transitions.termination == i))
                           for i in range(len(ant_pinpad.TERMINATIONS))]).astype(jnp.float32),
    })
    return ExpertState(params, opt_state, state.step + 1), env_states, metrics


@functools.partial(jax.jit, static_argnames=("env", "hyper", "num_updates"))
def train_steps(state: ExpertState, key: jax.Array, *, env: AntEnvParams, hyper: ExpertHyper,
                num_updates: int) -> tuple[ExpertState, dict[str, jax.Array]]:
    """``num_updates`` PPO updates from freshly reset environments, one jitted call.

    Update ``i`` draws its randomness from ``fold_in(key, state.step + i)``.
    Returns the state and metrics: per-update means over the call, ``success_rate`` = finished
    episodes that succeeded / finished episodes.
    """
    env_key = jax.random.fold_in(jax.random.fold_in(key, RESET_TAG), state.step)
    env_states = sharding.shard_batch(jax.vmap(ant_pinpad.reset, in_axes=(0, None))(
        jax.random.split(env_key, hyper.num_envs), env))

    def body(carry, _):
        s, envs = carry
        s, envs, metrics = _update(s, envs, jax.random.fold_in(key, s.step), env, hyper)
        return (s, envs), metrics

    first_step = state.step
    (state, _), per_update = jax.lax.scan(body, (state, env_states), None, length=num_updates)
    ended = per_update.pop("episodes_ended").sum()
    successes = per_update.pop("successes").sum()
    ends = per_update.pop("ends").sum(0)
    metrics = guards.summarise(per_update, first_step)
    metrics.update({"episodes": ended, "success_rate": successes / jnp.maximum(ended, 1.0)})
    # How episodes ended, as fractions of those that did: what the expert still gets wrong.
    metrics.update({f"ended_{name}": ends[i] / jnp.maximum(ended, 1.0)
                    for i, name in enumerate(ant_pinpad.TERMINATIONS) if name != "running"})
    return state, metrics
