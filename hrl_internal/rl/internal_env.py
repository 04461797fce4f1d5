"""The internal environment (Alg. 1-2): the frozen base model, the frozen controller decoder and
switching unit, and the real environment, seen together as an MDP whose action is a code z.

One internal step applies U(z) at layer l, runs the upper blocks, samples a primitive action, steps
the real env, runs the lower blocks on the new observation (KV caches, or the SSM's recurrent
state: O(1) work per env step),
updates the switching unit's GRU history and computes β; it repeats until β >= ``beta_threshold``
or the episode ends, summing the reward. The policy observes the unedited residual ``e_{t,l}`` at
each decision; since the base model attends to the whole history, that vector already summarises
``o_{1:t}``.

Two options take the metacontroller apart (gridworld only: they read the env's subgoal labels).
``switching="ground_truth"`` replaces the switching unit: the switch fires exactly when the env's
subgoal changes. ``decoder="subgoal_controllers"`` (which implies it) also replaces the decoder by
the supervised subgoal controllers of one layer (§C.3): a code ``z [G]`` applies ``U_g`` with
``g = argmax z``. That MDP's answer is known (the code of the task's next subgoal at each
decision) and so is its success: that of the ground-truth-switched controllers
(``analysis.steering.steered_rollout``). Between the two, ground-truth switching over the
metacontroller's own decoder asks whether its code space holds a code per subgoal at all. With the
forced-switch variant (``meta.variant == "forced_switch"``: a code every step, no switching unit
either) the same controllers may be any bank of edits, e.g. one that forces each primitive action:
the learner's own known-answer test.

``forget`` (not the paper's: its base keeps its whole context) makes the base forget the episode's
history at each switch, as ``analysis.rollout.rollout``'s ``forget`` does at each subgoal change:
the blocks below layer l (``"lower"``), above it (``"upper"``) or all of them (``"both"``) attend
from the switch's step on only to what came after the previous code's last action
(``backbone.forget_before``). With ground-truth switching that is exactly the rollout's regime, so
the known-answer method's best policy scores the supervised controllers' success under it. With the
switching unit, β is read from the unforgetting residual (the unit decides that a subgoal ended)
and the policy and the new code see the forgetting one (the lower blocks run again on the step's
observation).

A CompILE model (``meta.variant == "compile"``) has no causal switching unit (its boundaries are
inferred from whole episodes): the policy then chooses a code every ``meta.segment_rate`` steps,
the mean segment length of CompILE's prior.

Everything is written for one environment (caches with a batch axis of 1) and vmaps over any
number of them. ``tick`` is one primitive step; ``step`` is the internal step, a
``lax.while_loop`` of ticks, so a vmapped batch whose spans differ in length stays on device.
Batched RL rollouts scan ``tick`` over time instead (``hrl_internal.rl.internal_rl``): the two
consume the same randomness and give the same episodes.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
from flax import struct

from hrl_internal.envs import family, gridworld
from hrl_internal.envs.family import EnvParams
from hrl_internal.models import backbone, intervention, metacontroller
from hrl_internal.models.backbone import ModelConfig
from hrl_internal.models.metacontroller import MetacontrollerConfig


@dataclasses.dataclass(frozen=True)
class InternalEnvSpec:
    """Static parts (hashable): configs of the frozen models, the real env, the controlled layer."""

    model: ModelConfig
    meta: MetacontrollerConfig
    env: EnvParams
    layer: int
    beta_threshold: float = 0.5
    decoder: str = "metacontroller"  # or "subgoal_controllers" (see the module docstring)
    # or "ground_truth"; "subgoal_controllers" needs it unless the meta variant forces a switch
    switching: str = "gate"
    # "none" (the paper's), "lower", "upper" or "both": which blocks forget the history at a switch
    forget: str = "none"

    def __post_init__(self):
        backbone.check_forget(self.forget)
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.switching not in SWITCHINGS:
            raise ValueError(f"switching must be one of {SWITCHINGS}, got {self.switching!r}")
        if (self.decoder == "subgoal_controllers" and self.switching != "ground_truth"
                and not self.forced_switch):
            raise ValueError("decoder='subgoal_controllers' has no switching unit: it needs "
                             "switching='ground_truth', or meta.variant='forced_switch' (a code "
                             "every step)")
        if self.ground_truth_switching and not isinstance(self.env, gridworld.EnvParams):
            raise ValueError("ground-truth switching needs the gridworld's subgoal labels")

    @property
    def forced_switch(self) -> bool:
        return self.meta.variant == "forced_switch"

    @property
    def clock_switching(self) -> bool:
        """CompILE: a new code every ``meta.segment_rate`` env steps."""
        return self.meta.variant == "compile" and not self.ground_truth_switching

    @property
    def rule_switching(self) -> bool:
        """β comes from a rule (the env's labels, a clock, every step), not the switching unit."""
        return self.ground_truth_switching or self.clock_switching or self.forced_switch

    @property
    def known_answer(self) -> bool:
        return self.decoder == "subgoal_controllers"

    @property
    def ground_truth_switching(self) -> bool:
        return self.switching == "ground_truth"


DECODERS = ("metacontroller", "subgoal_controllers")
SWITCHINGS = ("gate", "ground_truth")


class Frozen(NamedTuple):
    """The frozen parameters the environment is made of."""

    base: Any  # base model params
    # metacontroller params (decoder, switching unit, GRU); for decoder="subgoal_controllers" one
    # layer's controllers {a [G, r, d], b [G, d, r]}
    meta: Any
    # [K, n_z] codes the policy picks among (``hrl_internal.rl.codebook``), or None: the policy
    # writes z itself
    codebook: Any = None


@struct.dataclass
class InternalState:
    env_state: Any  # gridworld.EnvState or ant_pinpad.AntState
    lower_cache: Any  # blocks 1..l, batch axis of 1 (KV caches, or recurrent states)
    upper_cache: Any  # blocks l+1..L
    e: jax.Array  # [d_model] unedited residual at layer l for the current time step
    history: jax.Array  # [n_h] the GRU history h_{t-1}
    code: jax.Array  # [n_z] the code in force (z_{t-1} until the policy chooses)
    key: jax.Array  # action-sampling key


def reset(key: jax.Array, frozen: Frozen, spec: InternalEnvSpec,
          env_state: Any | None = None) -> tuple[jax.Array, InternalState]:
    """A new episode (on ``env_state`` if given, else a fresh draw): ``(e_1 [d_model], state)``.

    The first decision is always the policy's.
    """
    env_key, act_key = jax.random.split(key)
    if env_state is None:
        env_state = family.reset(env_key, spec.env)
    lower_cache, upper_cache = backbone.init_caches(spec.model, spec.layer, 1,
                                                   spec.env.max_steps)
    # The caches' pytrees keep one structure through a scan.
    lower_cache, upper_cache = backbone.forget_caches(lower_cache, upper_cache,
                                                      jnp.zeros((1,), bool), spec.forget)
    state = InternalState(env_state, lower_cache, upper_cache, jnp.zeros((spec.model.d_model,)),
                          jnp.zeros((spec.meta.history_dim,)), jnp.zeros((spec.meta.latent_dim,)),
                          act_key)
    state = _observe(frozen, state, spec)
    return state.e, state


def _observe(frozen: Frozen, state: InternalState, spec: InternalEnvSpec) -> InternalState:
    """Runs the lower blocks on the env's current observation: the new ``e``."""
    obs = family.observe(state.env_state, spec.env)
    e, lower_cache = backbone.module(spec.model).lower(frozen.base, state.lower_cache, obs[None],
                                                       spec.model, spec.layer)
    return state.replace(e=e[0], lower_cache=lower_cache)


def _forget(state: InternalState, switch: jax.Array, spec: InternalEnvSpec) -> InternalState:
    """``state`` whose base forgets the history before this step where ``switch []`` holds."""
    lower, upper = backbone.forget_caches(state.lower_cache, state.upper_cache, switch[None],
                                          spec.forget)
    return state.replace(lower_cache=lower, upper_cache=upper)


def tick(frozen: Frozen, state: InternalState, z: jax.Array, spec: InternalEnvSpec,
         may_restart: jax.Array | None = None, fresh: Any | None = None
         ) -> tuple[InternalState, jax.Array, jax.Array, dict[str, jax.Array]]:
    """One primitive step under code ``z [n_z]``: ``(state, reward [], switch [], info)``.

    ``switch`` says the next step needs a new code (β >= threshold, or β ≡ 1 for the
    forced-switch variant). Once the episode is done the env is absorbing and the model state is
    no longer meaningful (its caches are full); callers stop at ``done``, or pass
    ``may_restart [] bool`` and a ``fresh`` initial env state: if the episode ends at this tick the
    next one begins on ``fresh`` (``info["restart"]``); ``reward`` and ``info["done"]`` still
    describe the step of the episode that ended.
    """
    chex.assert_shape(z, (spec.meta.latent_dim,))
    if spec.ground_truth_switching:
        subgoal_before = gridworld.current_subgoal(state.env_state)
    if spec.known_answer:
        edited = intervention.subgoal_controller(frozen.meta, jnp.argmax(z))(state.e)
    else:
        edited = metacontroller.edit(frozen.meta, z, state.e)
    outputs, upper_cache = backbone.module(spec.model).upper(
        frozen.base, state.upper_cache, edited[None], spec.model, spec.layer)
    key, act_key = jax.random.split(state.key)
    action = backbone.sample_action(act_key, jax.tree.map(lambda x: x[0], outputs))
    env_state, reward, done = family.step(state.env_state, action, spec.env)
    info = {"success": env_state.success, "task_index": env_state.progress}
    # The GRU history feeds only the switching unit, which ground-truth, clock and forced
    # switching replace.
    if spec.rule_switching:
        history = state.history
    else:
        history = metacontroller.gru_step(frozen.meta, state.history,
                                          metacontroller.observe(state.e, spec.meta))
    state = InternalState(env_state, state.lower_cache, upper_cache, state.e, history, z, key)
    restart = jnp.zeros((), bool) if may_restart is None else may_restart & done
    if may_restart is not None:
        pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(restart, a, b), new, old)
        state = InternalState(
            pick(fresh, state.env_state), backbone.restart_cache(state.lower_cache, restart),
            backbone.restart_cache(upper_cache, restart), state.e,
            jnp.where(restart, 0.0, history), jnp.where(restart, 0.0, z), key)
    if spec.ground_truth_switching:
        beta = (gridworld.current_subgoal(env_state) != subgoal_before).astype(jnp.float32)
    elif spec.clock_switching:
        steps = env_state.time if isinstance(spec.env, gridworld.EnvParams) else env_state.t
        beta = (steps % spec.meta.segment_rate == 0).astype(jnp.float32)
    elif spec.forced_switch:
        beta = jnp.ones((), jnp.float32)
    if spec.rule_switching:  # β is known before the new observation: forget, then observe
        switch = beta >= spec.beta_threshold
        if spec.forget != "none":
            state = _forget(state, switch, spec)
        state = _observe(frozen, state, spec)
    else:
        before = state
        state = _observe(frozen, state, spec)
        beta = metacontroller.switching_gate(frozen.meta,
                                             metacontroller.observe(state.e, spec.meta),
                                             state.history, state.code, spec.meta.gate_temperature)
        switch = beta >= spec.beta_threshold
        if spec.forget != "none":
            forgot = _observe(frozen, _forget(before, switch, spec), spec)
            state = jax.tree.map(lambda a, b: jnp.where(switch, a, b), forgot, state)
    return state, reward, switch | restart, {**info, "beta": beta, "action": action, "done": done,
                                             "restart": restart}


def step(frozen: Frozen, state: InternalState, z: jax.Array, spec: InternalEnvSpec
         ) -> tuple[jax.Array, InternalState, jax.Array, jax.Array, dict[str, jax.Array]]:
    """One internal step: ticks under ``z`` until a switch or the episode's end.

    Returns ``(e [d_model], state, reward [] summed over the span, done [], info)`` with
    ``info["env_steps"]`` the span's length. Stepping a finished episode does nothing.
    """
    def cond(carry):
        state, _, _, stop = carry
        return ~stop & ~state.env_state.done

    def body(carry):
        state, total, steps, _ = carry
        state, reward, switch, _ = tick(frozen, state, z, spec)
        return state, total + reward, steps + 1, switch

    state, total, steps, _ = jax.lax.while_loop(
        cond, body, (state, jnp.zeros(()), jnp.zeros((), jnp.int32), jnp.zeros((), bool)))
    info = {"env_steps": steps, "success": state.env_state.success,
            "progress": state.env_state.progress}
    return state.e, state, total, state.env_state.done, info
