"""Benchmark rows for phases 2 and 3: metacontroller training steps/s, and internal-RL /
raw-action-RL rollouts (env steps/s) and updates (updates/s). ``experiments.bench`` runs them.

The models are freshly initialised: speed does not depend on training, except through episode
lengths, which the rows report. Env steps count only steps of running episodes; ticks count every
slot-step the batch computed (a slot whose episodes are over idles until the batch drains).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax

from experiments import configs
from experiments.bench_model import packed_rows
from experiments.timing import measure, row
from hrl_internal.models import metacontroller, transformer
from hrl_internal.rl import internal_env, internal_rl, policy, raw_action, train
from hrl_internal.training import metacontroller as meta_training

# Row name -> the learner of ``train.LEARNERS``: codes through the internal env, or raw actions.
METHODS = {"internal_rl": "codes", "raw_action_rl": "actions"}


def meta_rows(config: configs.Config, batch: int, steps: int, repeats: int, sizes: str,
              episodes: int = 1024, seeds: int = 1) -> list[dict[str, Any]]:
    """``steps`` metacontroller training steps (standard variant, first α) per timed call, at
    ``config``'s base-model and metacontroller sizes (``sizes`` names that preset in the row),
    ``batch`` packed rows of max_steps; with ``seeds > 1``, that many metacontrollers vmapped
    in one program (``experiments.rate_distortion_seeds --train``), counted in seed-steps."""
    env = config.gridworld.env_params("pretrain")
    model = config.model.transformer(env)
    m = config.meta
    meta = m.module(model.d_model)
    base = transformer.init(jax.random.PRNGKey(0), model)
    rows = packed_rows(env, episodes, seed=1)
    hyper = dataclasses.replace(m.hyper(m.alphas()[0], "standard"), batch_size=batch)
    train = functools.partial(meta_training.train_steps, base=base, data=rows, model=model,
                              meta=meta, env=env, layer=m.layer, hyper=hyper, num_steps=steps)
    if seeds == 1:
        state = meta_training.init_state(jax.random.PRNGKey(2), meta, model, hyper)
        timing = measure(lambda: train(state, key=jax.random.PRNGKey(3))[1], repeats=repeats)
        return [row("metacontroller_train", batch, steps, "steps/s", timing, sizes=sizes,
                    steps=steps, T=env.max_steps, layer=m.layer, model=dataclasses.asdict(model),
                    meta=dataclasses.asdict(meta))]
    states = jax.vmap(lambda k: meta_training.init_state(k, meta, model, hyper))(
        jax.random.split(jax.random.PRNGKey(2), seeds))
    keys = jax.random.split(jax.random.PRNGKey(3), seeds)
    together = jax.jit(jax.vmap(lambda state, key: train(state, key=key)[1]))
    timing = measure(lambda: together(states, keys), repeats=repeats)
    return [row("metacontroller_train_seeds", batch, steps * seeds, "seed-steps/s", timing,
                sizes=sizes, seeds=seeds, steps=steps, T=env.max_steps, layer=m.layer)]


class RLSetup(NamedTuple):
    """What every RL row acts with: frozen models and the RL task's env."""

    model: transformer.TransformerConfig
    base: Any  # base-model params
    frozen: internal_env.Frozen
    env_spec: internal_env.InternalEnvSpec
    policy: policy.PolicyConfig
    hyper: train.RLHyper


@functools.lru_cache(maxsize=2)
def setup(config: configs.Config) -> RLSetup:
    """Freshly initialised models at ``config``'s sizes, on its RL task (cached per config:
    internal-RL, raw-action and ratio rows share them)."""
    m, r = config.meta, config.rl
    model = config.model.transformer(config.gridworld.env_params("pretrain"))
    meta = m.module(model.d_model)
    base = transformer.init(jax.random.PRNGKey(0), model)
    rl_env = dataclasses.replace(config.gridworld.env_params(r.rl_task), max_steps=r.rl_max_steps)
    return RLSetup(model, base,
                   internal_env.Frozen(base, metacontroller.init(jax.random.PRNGKey(4), meta)),
                   internal_env.InternalEnvSpec(model, meta, rl_env, m.layer, m.beta_threshold),
                   policy.PolicyConfig(model.d_model, meta.latent_dim, r.policy_width),
                   train.RLHyper(learning_rate=r.rl_lr, update_epochs=r.rl_update_epochs))


def _spec_and_params(s: RLSetup, method: str, slots: int, start_ticks: int):
    sizes = dict(num_slots=slots, start_ticks=start_ticks, max_episodes=max(1, start_ticks // 4))
    if method == "internal_rl":
        spec = internal_rl.InternalRLSpec(s.env_spec, s.policy, **sizes)
        return spec, internal_rl.init_params(jax.random.PRNGKey(5), spec), s.frozen
    return raw_action.RawActionSpec(s.model, s.env_spec.env, **sizes), s.base, None


def rollout_rows(s: RLSetup, method: str, slots: int, start_ticks: int, repeats: int
                 ) -> list[dict[str, Any]]:
    """One rollout of ``slots`` environments (episodes start during ``start_ticks`` ticks and run
    to their end) per timed call."""
    spec, params, frozen = _spec_and_params(s, method, slots, start_ticks)
    module = train.LEARNERS[METHODS[method]]
    roll = jax.jit(lambda p, k: module.rollout(p, frozen, k, spec)[1])
    key = jax.random.PRNGKey(6)
    timing = measure(roll, params, key, repeats=repeats)
    stats = roll(params, key)  # compiled: the episodes just timed
    ticks = slots * spec.num_ticks
    env_steps = float(stats.env_steps)
    return [row(f"{method}_rollout", slots, env_steps, "env steps/s", timing,
                ticks=ticks, ticks_per_s=ticks / timing.seconds,
                episodes_per_s=float(stats.episodes) / timing.seconds,
                env_steps_per_decision=env_steps / max(float(stats.decisions), 1.0),
                start_ticks=start_ticks, num_ticks=spec.num_ticks,
                env=dataclasses.asdict(s.env_spec.env))]


def update_rows(s: RLSetup, method: str, slots: int, start_ticks: int, repeats: int
                ) -> list[dict[str, Any]]:
    """One RL update (a rollout and ``update_epochs`` gradient steps) per timed call."""
    spec, params, frozen = _spec_and_params(s, method, slots, start_ticks)
    state = jax.tree.map(lambda x: x[None], train.init_state(params, s.hyper))
    keys = jax.random.PRNGKey(7)[None]
    timing = measure(lambda: train.train_steps(state, frozen, keys, learner=METHODS[method],
                                               spec=spec, hyper=s.hyper, num_steps=1)[1],
                     repeats=repeats)
    return [row(f"{method}_update", slots, 1, "updates/s", timing, start_ticks=start_ticks,
                num_ticks=spec.num_ticks, update_epochs=s.hyper.update_epochs)]
