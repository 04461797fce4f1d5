"""The base model acting in the environment, one step at a time with KV caches (or, for the
ant's SSM, recurrent states).

Each step: observe, run the lower blocks (``lower``), optionally edit the residual
stream at ``layer`` (``intervene``), run the upper blocks and sample an action, step the env. A
batch of episodes is one jitted call: a ``lax.scan`` over time of batched model and env steps.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hrl_internal.envs import family
from hrl_internal.envs.family import EnvParams
from hrl_internal.models import backbone
from hrl_internal.models.backbone import ModelConfig

# intervene(intervene_params, e_t [d_model], env_state) -> e_t; may read ground-truth labels from
# the env state (analysis only). A module-level function, so jit compiles it once.
Intervention = Callable[[Any, jax.Array, Any], jax.Array]


class RolloutResult(NamedTuple):
    success: jax.Array  # [N] bool
    length: jax.Array  # [N] int32, steps taken
    progress: jax.Array  # [N] int32, colours of the task visited
    # [N] int32 colour of the cell each episode ends on (-1: none): the wrong colour entered by
    # an episode that failed before its time limit (``family.colour_here``).
    final_colour: jax.Array | None = None


def colour_success(result: RolloutResult) -> float:
    """Colours reached in order per colour attempted: ``Σ progress / Σ attempts``, where an
    episode attempts every colour it reached and, unless it succeeded, the one it was pursuing
    when it ended (a wrong colour, or the time limit). Under a constant per-colour success rate p
    this estimates p, and a task of k colours then succeeds about p^k of the time."""
    progress = np.asarray(result.progress, np.float64)
    attempts = progress + (~np.asarray(result.success, bool))
    return float(progress.sum() / max(attempts.sum(), 1.0))


def failure_anatomy(result: RolloutResult, max_steps: int) -> dict[str, float]:
    """Where episodes of a task made of colour pairs fail. ``pair_start_colour_success``: colours
    reached per colour attempted at a pair's first colour (even task positions: where a new
    subgoal starts), ``pair_second_colour_success`` at its second; ``time_limit_share``: of the
    failed episodes, the fraction that ran out of time (the rest entered a wrong colour)."""
    progress = np.asarray(result.progress, np.int64)
    failed = ~np.asarray(result.success, bool)
    first, second = (progress + 1) // 2, progress // 2  # colours reached at each position
    first_failed = np.sum(failed & (progress % 2 == 0))
    second_failed = np.sum(failed & (progress % 2 == 1))
    timed_out = failed & (np.asarray(result.length) >= max_steps)
    return {"pair_start_colour_success": float(first.sum() / max(first.sum() + first_failed, 1)),
            "pair_second_colour_success":
                float(second.sum() / max(second.sum() + second_failed, 1)),
            "time_limit_share": float(timed_out.sum() / max(failed.sum(), 1))}


def wrong_colours(result: RolloutResult, max_steps: int, num_colours: int,
                  task_len: int) -> np.ndarray:
    """``[task_len, num_colours]`` counts: episodes that ended before their time limit by entering
    colour c while pursuing the task's k-th colour (``progress == k``). Which wrong colour an
    episode takes says what it was heading for instead (e.g. the colour its history predicts)."""
    failed = ~np.asarray(result.success, bool) & (np.asarray(result.length) < max_steps)
    colour, progress = np.asarray(result.final_colour), np.asarray(result.progress)
    counts = np.zeros((task_len, num_colours), np.int64)
    keep = failed & (colour >= 0) & (progress < task_len)
    np.add.at(counts, (progress[keep], colour[keep]), 1)
    return counts


def rollout(key: jax.Array, params: Any, model: ModelConfig, env: EnvParams,
            num_episodes: int, *, layer: int | None = None,
            intervene: Intervention | None = None, intervene_params: Any = None,
            greedy: bool = False, forget: str = "none") -> RolloutResult:
    """Runs ``num_episodes`` episodes of the model acting (sampling unless ``greedy``), with
    ``intervene(intervene_params, e, state)`` editing the residual stream at ``layer``.

    ``forget`` (an analysis, not how the model was trained: it reads the env's task progress)
    makes the blocks below ``layer`` (``lower``), above it (``upper``) or all of them (``both``)
    forget the episode's history each time a new subgoal begins (``backbone.forget_before``), so
    they attend only to the current subgoal's steps: does the history before a subgoal override
    the subgoal written at ``layer``?"""
    backbone.check_forget(forget)
    layer = model.num_layers if layer is None else layer
    # ``greedy`` is traced, not static: sampled and greedy rollouts share one compiled program.
    return _rollout(key, params, intervene_params, jnp.asarray(greedy), model, env, num_episodes,
                    layer, intervene, forget)


@functools.partial(jax.jit, static_argnums=(4, 5, 6, 7, 8, 9))
def _rollout(key, params, intervene_params, greedy, model, env, num_episodes, layer, intervene,
             forget):
    reset_key, act_key = jax.random.split(key)
    state = jax.vmap(family.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_episodes), env)
    # Episodes advance in lockstep (finished ones are absorbing), so caches share one position.
    lower_cache, upper_cache = backbone.init_caches(model, layer, num_episodes, env.max_steps)
    net = backbone.module(model)
    observe = jax.vmap(family.observe, in_axes=(0, None))
    env_step = jax.vmap(family.step, in_axes=(0, 0, None))

    per_subgoal = family.colours_per_subgoal(env)

    def act(carry, step_key):
        state, length, lower_cache, upper_cache, segment = carry
        if forget != "none":
            # A new subgoal began at the last step: what came before it is forgotten from here.
            began = state.progress // per_subgoal != segment
            lower_cache, upper_cache = backbone.forget_caches(lower_cache, upper_cache, began,
                                                              forget)
        segment = state.progress // per_subgoal
        e, lower_cache = net.lower(params, lower_cache, observe(state, env), model, layer)
        if intervene is not None:
            e = jax.vmap(intervene, in_axes=(None, 0, 0))(intervene_params, e, state)
        outputs, upper_cache = net.upper(params, upper_cache, e, model, layer)
        action = jnp.where(greedy, backbone.greedy_action(outputs),
                           backbone.sample_action(step_key, outputs))
        length = length + (~state.done).astype(jnp.int32)
        state, _, _ = env_step(state, action, env)
        return (state, length, lower_cache, upper_cache, segment), None

    zeros = jnp.zeros((num_episodes,), jnp.int32)
    # The caches' pytrees keep one structure through the scan.
    lower_cache, upper_cache = backbone.forget_caches(lower_cache, upper_cache,
                                                      zeros.astype(bool), forget)
    carry = (state, zeros, lower_cache, upper_cache, zeros)
    (final, length, _, _, _), _ = jax.lax.scan(act, carry, jax.random.split(act_key, env.max_steps))
    final_colour = jax.vmap(family.colour_here, in_axes=(0, None))(final, env)
    return RolloutResult(final.success, length, final.progress, final_colour)
