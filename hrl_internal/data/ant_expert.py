"""The ant-pinpad expert (§C.1.1, Table A3): one goal-conditioned PPO agent for every task.

The expert sees more than the base model will: the environment's observation, per cell a one-hot
of the grid-level shortest-path direction towards the current target colour, and that direction
at the ant's own cell turned into the torso's heading frame. Its training reward adds
``direction_weight`` × (torso velocity · shortest-path direction) to the sparse task reward, so
walking the right way pays at every step while a task is far from solved; a small bonus per step
survived (``alive_bonus``) and a cost on squared torques (``control_cost``), as in brax's ant, make
falling over and jumping (the torso above 1 m ends the episode) cost something. Training starts
under walking rules (the environment's ``end_on_violation=False``, chosen by the caller) because
under the full rules a flailing ant leaves its start cell within ~30 steps: too short to learn a
gait from.

The learner is plain PPO with GAE and a separate value network. Every jitted call
(``train_steps``) starts its environments afresh and runs ``num_updates`` updates as one
``lax.scan``: the training state is then only parameters, optimiser moments and a step counter,
so a run resumed from any checkpoint equals an uninterrupted one bit for bit.
Clean demonstrations use the Gaussian's mean action (``rollout(..., greedy=True)``).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from hrl_internal.envs import ant_pinpad
from hrl_internal.envs.ant_pinpad import AntEnvParams, AntState
from hrl_internal.training import guards
from hrl_internal.utils import sharding
from hrl_internal.training.pretrain import clipped_adamw

Params = dict[str, Any]
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


def expert_obs_size(env: AntEnvParams) -> int:
    return env.obs_size + 4 * env.num_cells + 2


def heading_frame(state: AntState, direction: jax.Array) -> jax.Array:
    """World ``direction [2]`` -> the torso's yaw frame ``[2]`` (x forward, y left)."""
    quat = state.pipeline_state.q[3:7]  # (w, x, y, z)
    w, x, y, z = quat[0], quat[1], quat[2], quat[3]
    yaw = jnp.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    c, s = jnp.cos(yaw), jnp.sin(yaw)
    return jnp.stack([c * direction[0] + s * direction[1], -s * direction[0] + c * direction[1]])


def expert_observation(state: AntState, env: AntEnvParams) -> jax.Array:
    """``[expert_obs_size]``: observation ‖ per-cell path directions ‖ own direction, ego frame."""
    directions = ant_pinpad.shortest_path_directions(state, env).reshape(-1)
    own = heading_frame(state, ant_pinpad.target_direction(state, env))
    return jnp.concatenate([ant_pinpad.observe(state, env), directions.astype(jnp.float32), own])


def _dense(key: jax.Array, fan_in: int, fan_out: int, scale: float = 1.0) -> Params:
    w = jax.random.normal(key, (fan_in, fan_out)) * (scale / math.sqrt(fan_in))
    return {"w": w, "b": jnp.zeros((fan_out,))}


def _mlp_init(key: jax.Array, sizes: tuple[int, ...], last_scale: float) -> list[Params]:
    keys = jax.random.split(key, len(sizes) - 1)
    return [_dense(k, a, b, last_scale if i == len(sizes) - 2 else 1.0)
            for i, (k, a, b) in enumerate(zip(keys, sizes[:-1], sizes[1:]))]


def _mlp(layers: list[Params], x: jax.Array) -> jax.Array:
    for i, p in enumerate(layers):
        x = x @ p["w"] + p["b"]
        if i < len(layers) - 1:
            x = jax.nn.swish(x)
    return x


def init_params(key: jax.Array, env: AntEnvParams, hyper: ExpertHyper) -> Params:
    k_pi, k_v = jax.random.split(key)
    sizes = (expert_obs_size(env), hyper.hidden, hyper.hidden)
    return {
        # A small last layer: the first actions are near zero torque plus exploration noise.
        "policy": _mlp_init(k_pi, sizes + (ant_pinpad.ACTION_SIZE,), 0.01),
        "log_std": jnp.full((ant_pinpad.ACTION_SIZE,), hyper.init_log_std, jnp.float32),
        "value": _mlp_init(k_v, sizes + (1,), 1.0),
    }


def policy(params: Params, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``obs [..., expert_obs_size]`` -> ``(mean [..., A] in (-1, 1), log_std [A])``."""
    return jnp.tanh(_mlp(params["policy"], obs)), params["log_std"]


def value(params: Params, obs: jax.Array) -> jax.Array:
    return _mlp(params["value"], obs)[..., 0]


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, x: jax.Array) -> jax.Array:
    return -0.5 * jnp.sum(((x - mean) * jnp.exp(-log_std)) ** 2 + 2.0 * log_std
                          + math.log(2.0 * math.pi), axis=-1)


def optimizer(hyper: ExpertHyper) -> optax.GradientTransformation:
    return clipped_adamw(hyper.learning_rate, hyper.weight_decay, hyper.grad_clip,
                         hyper.skip_nonfinite)


def init_state(key: jax.Array, env: AntEnvParams, hyper: ExpertHyper) -> ExpertState:
    params = init_params(key, env, hyper)
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


def _act(params: Params, state: AntState, key: jax.Array, env: AntEnvParams, greedy: bool):
    obs = expert_observation(state, env)
    mean, log_std = policy(params, obs)
    action = mean if greedy else mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    return obs, action, gaussian_log_prob(mean, log_std, action)


def collect(params: Params, states: AntState, key: jax.Array, env: AntEnvParams,
            hyper: ExpertHyper) -> tuple[AntState, Transition, jax.Array]:
    """``unroll`` steps of ``num_envs`` environments; an ended episode restarts at once.

    Returns ``(states, transitions [unroll, num_envs], bootstrap values [num_envs])``.
    """
    def one(state, step_key):
        k_act, k_reset = jax.random.split(step_key)
        obs, action, log_prob = _act(params, state, k_act, env, greedy=False)
        nxt, reward = _env_step(state, action, env, hyper)
        fresh = ant_pinpad.reset(k_reset, env)
        restarted = jax.tree.map(lambda a, b: jnp.where(nxt.done, a, b), fresh, nxt)
        return restarted, Transition(obs, action, log_prob, value(params, obs), reward, nxt.done,
                                     nxt.success, nxt.reward, nxt.termination)

    def tick(states, step_key):
        return jax.vmap(one)(states, jax.random.split(step_key, hyper.num_envs))

    states, transitions = jax.lax.scan(tick, states, jax.random.split(key, hyper.unroll))
    last = jax.vmap(lambda s: value(params, expert_observation(s, env)))(states)
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
    mean, log_std = policy(params, batch.obs)
    log_prob = gaussian_log_prob(mean, log_std, batch.action)
    ratio = jnp.exp(log_prob - batch.log_prob)
    adv = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
    surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - hyper.clip, 1 + hyper.clip) * adv)
    value_loss = 0.5 * jnp.mean((value(params, batch.obs) - target) ** 2)
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


class Rollout(NamedTuple):
    """Whole episodes of the expert, ``[N, T(+1), ...]``; the base model's data."""

    obs: jax.Array  # [N, T+1, obs_size], the environment's observation (not the expert's)
    actions: jax.Array  # [N, T, A]
    mask: jax.Array  # [N, T] bool, a real step
    subgoals: jax.Array  # [N, T] int, the colour being sought (analysis labels)
    task_index: jax.Array  # [N, T] int, subgoals completed before the step
    task_id: jax.Array  # [N] int
    success: jax.Array  # [N] bool
    object_cells: jax.Array  # [N, num_objects]
    wall_cells: jax.Array  # [N, num_walls]


def _episode(params: Params, key: jax.Array, env: AntEnvParams, greedy: bool) -> Rollout:
    reset_key, act_key = jax.random.split(key)
    start = ant_pinpad.reset(reset_key, env)

    def act(state, step_key):
        _, action, _ = _act(params, state, step_key, env, greedy)
        action = jnp.clip(action, -1.0, 1.0)
        record = (ant_pinpad.observe(state, env), action, ~state.done,
                  ant_pinpad.current_subgoal(state), state.progress)
        return ant_pinpad.step(state, action, env), record

    last, (obs, actions, live, subgoals, progress) = jax.lax.scan(
        act, start, jax.random.split(act_key, env.max_steps))
    obs = jnp.concatenate([obs, ant_pinpad.observe(last, env)[None]])
    return Rollout(obs, actions, live, subgoals, progress, start.task_id, last.success,
                   start.object_cells, start.wall_cells)


@functools.partial(jax.jit, static_argnames=("env", "greedy"))
def rollout(params: Params, keys: jax.Array, *, env: AntEnvParams, greedy: bool = True
            ) -> Rollout:
    """One episode per key (``keys [N, 2]``), acting with the mean action when ``greedy``."""
    chex.assert_rank(keys, 2)
    return jax.vmap(_episode, in_axes=(None, 0, None, None))(params, keys, env, greedy)
