"""Internal RL (Alg. 3): the policy picks a code z only when the switching unit fires; the frozen
base model, decoder and switching unit turn it into primitive actions.

``rollout`` runs a batch of internal environments in one ``lax.scan`` over primitive time (the
vmapped ``internal_env.tick``), asking the policy for a code wherever the previous tick switched;
``rl_loss`` re-scores those decisions under new params. Arrays are time-major ``[T, B, ...]``.

With ``codebook_size`` K > 0 (not the paper's) the policy's head is categorical over the K codes of
``frozen.codebook`` (``hrl_internal.rl.codebook``): the batch records the one-hot choice, the
environment receives the chosen code.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from hrl_internal.rl import codebook, episodes, internal_env, policy, ppo
from hrl_internal.rl.internal_env import Frozen, InternalEnvSpec
from hrl_internal.rl.policy import PolicyConfig


@dataclasses.dataclass(frozen=True)
class InternalRLSpec:
    env: InternalEnvSpec
    policy: PolicyConfig
    num_slots: int = 64  # environments stepped together
    start_ticks: int = 100  # ticks during which a slot may start a new episode
    max_episodes: int = 32  # episodes per slot per rollout at most
    codebook_size: int = 0  # K > 0: the policy picks one of frozen.codebook's K codes

    def __post_init__(self):
        if self.codebook_size:
            if self.env.known_answer:
                raise ValueError("a codebook is for the metacontroller's continuous codes; the "
                                 "subgoal controllers' codes are already discrete")
            if self.policy.head != "categorical" or self.policy.latent_dim != self.codebook_size:
                raise ValueError(f"a codebook of {self.codebook_size} codes needs a categorical "
                                 f"policy head over {self.codebook_size} choices, got "
                                 f"{self.policy.head} over {self.policy.latent_dim}")
        elif self.policy.head == "categorical" and not self.env.known_answer:
            raise ValueError("a categorical code head needs a decoder that reads argmax z "
                             "(decoder='subgoal_controllers') or a codebook; the metacontroller's "
                             "codes are continuous")

    @property
    def num_ticks(self) -> int:
        return self.start_ticks + self.env.env.max_steps


class Batch(NamedTuple):
    """What ``rl_loss`` needs, ``[T, S, ...]`` per tick of the rollout."""

    e: jax.Array  # [T, S, d_model] residual the policy read (meaningful where ``decide``)
    z: jax.Array  # [T, S, n_z] code chosen (with a codebook: [T, S, K], the one-hot choice)
    log_prob: jax.Array  # [T, S] its log-probability under the acting params
    decide: jax.Array  # [T, S] bool, the policy chose a code at this tick
    first: jax.Array  # [T, S] bool, an episode starts at this tick (the policy state resets)
    advantage: jax.Array  # [T, S], that of the tick's episode


def init_params(key: jax.Array, spec: InternalRLSpec) -> Any:
    return policy.init(key, spec.policy)


def rollout(params: Any, frozen: Frozen, key: jax.Array, spec: InternalRLSpec,
            task_id: jax.Array | None = None) -> tuple[Batch, episodes.Stats]:
    """Whole episodes of the policy acting through the internal environment (``episodes``), on
    tasks drawn from the env's task set, or all on ``task_id`` if given."""
    env_spec, pol, S, E = spec.env, spec.policy, spec.num_slots, spec.max_episodes
    pool_key, reset_key, policy_key = jax.random.split(key, 3)
    pool = episodes.initial_pool(pool_key, env_spec.env, S, E, task_id)
    _, states = jax.vmap(internal_env.reset, in_axes=(0, None, None, 0))(
        jax.random.split(reset_key, S), frozen, env_spec, episodes.pool_entry(pool, jnp.zeros(
            (S,), jnp.int32)))
    tick = jax.vmap(internal_env.tick, in_axes=(None, 0, 0, None, 0, 0))
    policy_step = jax.vmap(policy.step, in_axes=(None, 0, 0, None))

    def live(carry, inputs):
        states, h, need, slots = carry
        t, step_key = inputs
        h = jnp.where(slots.first[:, None], 0.0, h)
        h_new, mean, log_std = policy_step(params, h, states.e, pol)
        z_new = policy.sample(step_key, mean, log_std, pol.head)
        code_new = codebook.lookup(frozen.codebook, z_new) if spec.codebook_size else z_new
        decide = need & slots.running
        z = jnp.where(decide[:, None], code_new, states.code)
        h = jnp.where(decide[:, None], h_new, h)
        log_prob = jnp.where(decide, policy.log_prob(mean, log_std, z_new, pol.head), 0.0)
        e_t = states.e
        may = episodes.may_restart(slots, t, spec.start_ticks, E)
        fresh = episodes.pool_entry(pool, slots.index + 1)
        states, reward, switch, info = tick(frozen, states, z, env_spec, may, fresh)
        rec = episodes.record(slots, reward, info["done"], info["success"], info["task_index"], E)
        slots = episodes.advance(slots, info["done"], info["restart"])
        chosen = z_new if spec.codebook_size else z  # what log_prob scores
        return (states, h, switch, slots), (rec, e_t, chosen, log_prob, decide)

    carry = (states, jnp.zeros((S, pol.width)), jnp.ones((S,), bool), episodes.start(S))
    ticks = jnp.arange(spec.num_ticks)
    _, (rec, e_seq, z, log_prob, decide) = episodes.scan_until_drained(
        live, carry, (ticks, jax.random.split(policy_key, spec.num_ticks)),
        lambda c: c[3].running)
    advantage, stats = episodes.advantages(rec, S * E)
    stats = stats._replace(decisions=jnp.sum(decide))
    return Batch(e_seq, z, log_prob, decide, rec.first, advantage), stats


def log_probs(params: Any, batch: Batch, spec: InternalRLSpec) -> jax.Array:
    """``[T, B]`` log-probabilities of the batch's codes, the recurrence advancing at decisions."""
    pol = spec.policy
    policy_step = jax.vmap(policy.step, in_axes=(None, 0, 0, None))

    def body(h, inputs):
        e, z, decide, first = inputs
        h = jnp.where(first[:, None], 0.0, h)
        h_new, mean, log_std = policy_step(params, h, e, pol)
        return jnp.where(decide[:, None], h_new, h), policy.log_prob(mean, log_std, z, pol.head)

    h0 = jnp.zeros((batch.decide.shape[1], pol.width))
    _, out = jax.lax.scan(body, h0, (batch.e, batch.z, batch.decide, batch.first))
    return out


def rl_loss(params: Any, batch: Batch, spec: InternalRLSpec, clip: float = 0.2
            ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The clipped surrogate over the policy's decisions: ``(loss [], metrics)``."""
    return ppo.clipped_surrogate(log_probs(params, batch, spec), batch.log_prob, batch.advantage,
                                 batch.decide, clip)
