"""hrl_internal: internal reinforcement learning in the residual stream of a pretrained
autoregressive model, as pure JAX functions.

The public API is a set of modules of pure functions (params and configs in, arrays out; they
jit, vmap and grad), named after the paper's terms::

    from hrl_internal import gridworld, transformer, metacontroller, internal_env, internal_rl

    gridworld.reset(key, params, task_id=None) -> (obs [obs_size], state)
    gridworld.step(state, action, params) -> (obs, state, reward, done, info)
    expert.expert_action(key, state, params, epsilon) -> action
    transformer.init(key, config) -> params
    transformer.apply(params, obs [B, T, obs_size], config, *, controller=None, layer=None)
        -> ({"action_logits": [B, T, A], ...}, residuals [B, T, L + 1, d_model])
    transformer.lower(params, cache, obs_t, config, layer) -> (e_t, cache)    acting step by step
    transformer.upper(params, cache, e_t, config, layer) -> (outputs, cache)
    intervention.low_rank_update(e, a, b) -> e + B (A e)           the controller intervention
    metacontroller.init(key, config) -> params
    metacontroller.unroll(params, e [T, d], resets [T], key, config) -> outputs (z, beta, mu, ...)
    metacontroller.controller_decoder(params, z [n_z]) -> (a [r, d], b [d, r]), U(z) = b a
    metacontroller.controller(params, outputs, config) -> (e [T, d] -> e + U_t e)
    internal_env.reset(key, frozen, spec) -> (e, state)
    internal_env.step(frozen, state, z, spec) -> (e, state, reward, done, info)
    internal_rl.rl_loss(params, batch, spec, clip) -> (loss, metrics)

    ant_pinpad.reset(key, params, task_id=None) -> state     the MJX ant (brax), continuous actions
    ant_pinpad.step(state, action [8], params) -> state;  ant_pinpad.observe(state, params) -> obs
    ant_expert.rollout(params, keys [N, 2], *, env, greedy=True) -> Rollout   the expert's episodes
    hawk.apply(params, obs [B, T, obs_size], config, *, controller=None, layer=None)
        -> ({"action_mean", "action_log_std", "obs_mean"}, residuals [B, T, L + 1, d_model])
    backbone.module(config), family.reset/observe/step: one interface over both models and envs

    with sharding.use(sharding.batch_mesh()):   data parallel over every device: the training and
        ...                                      RL programs split their batch (shard_batch)

The configs and specs they take are also here by name (``EnvParams``, ``AntEnvParams``,
``TransformerConfig``, ``HawkConfig``, ``MetacontrollerConfig``, ``InternalEnvSpec``, ``Frozen``, ``InternalRLSpec``, ``PolicyConfig``).
Every name loads on first use, so ``import hrl_internal`` (and any of its submodules) costs
nothing more than what is used. Training loops, checkpoints and the launcher stay out of it:
they live in ``hrl_internal.training`` and ``launch``.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public name -> the module it is.
_MODULES = {
    "gridworld": "hrl_internal.envs.gridworld",
    "expert": "hrl_internal.data.expert",
    "dataset": "hrl_internal.data.dataset",
    "packing": "hrl_internal.data.packing",
    "transformer": "hrl_internal.models.transformer",
    "intervention": "hrl_internal.models.intervention",
    "metacontroller": "hrl_internal.models.metacontroller",
    "rglru": "hrl_internal.models.rglru",
    "internal_env": "hrl_internal.rl.internal_env",
    "internal_rl": "hrl_internal.rl.internal_rl",
    "policy": "hrl_internal.rl.policy",
    "ppo": "hrl_internal.rl.ppo",
    "raw_action": "hrl_internal.rl.raw_action",
    "ant_pinpad": "hrl_internal.envs.ant_pinpad",
    "ant_expert": "hrl_internal.data.ant_expert",
    "sharding": "hrl_internal.utils.sharding",
    "hawk": "hrl_internal.models.hawk",
    "backbone": "hrl_internal.models.backbone",
    "family": "hrl_internal.envs.family",
}
# Public name -> (module, attribute): the configs and specs the functions above take.
_ATTRIBUTES = {
    "EnvParams": ("hrl_internal.envs.gridworld", "EnvParams"),
    "AntEnvParams": ("hrl_internal.envs.ant_pinpad", "AntEnvParams"),
    "TransformerConfig": ("hrl_internal.models.transformer", "TransformerConfig"),
    "HawkConfig": ("hrl_internal.models.hawk", "HawkConfig"),
    "MetacontrollerConfig": ("hrl_internal.models.metacontroller", "MetacontrollerConfig"),
    "InternalEnvSpec": ("hrl_internal.rl.internal_env", "InternalEnvSpec"),
    "Frozen": ("hrl_internal.rl.internal_env", "Frozen"),
    "InternalRLSpec": ("hrl_internal.rl.internal_rl", "InternalRLSpec"),
    "PolicyConfig": ("hrl_internal.rl.policy", "PolicyConfig"),
}

__all__ = [*_MODULES, *_ATTRIBUTES]

if TYPE_CHECKING:  # what static tools see; at run time the names load lazily (below)
    from hrl_internal.data import ant_expert, dataset, expert, packing
    from hrl_internal.envs import ant_pinpad, family, gridworld
    from hrl_internal.envs.ant_pinpad import AntEnvParams
    from hrl_internal.envs.gridworld import EnvParams
    from hrl_internal.models import backbone, hawk, intervention, metacontroller, rglru, transformer
    from hrl_internal.models.hawk import HawkConfig
    from hrl_internal.models.metacontroller import MetacontrollerConfig
    from hrl_internal.models.transformer import TransformerConfig
    from hrl_internal.rl import internal_env, internal_rl, policy, ppo, raw_action
    from hrl_internal.rl.internal_env import Frozen, InternalEnvSpec
    from hrl_internal.rl.internal_rl import InternalRLSpec
    from hrl_internal.rl.policy import PolicyConfig
    from hrl_internal.utils import sharding


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): this file runs on every import of any submodule, so importing the whole
    # API here would make e.g. ``hrl_internal.utils.progress`` pull in jax.
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _ATTRIBUTES:
        module, attribute = _ATTRIBUTES[name]
        value = getattr(importlib.import_module(module), attribute)
    else:
        raise AttributeError(f"module 'hrl_internal' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
