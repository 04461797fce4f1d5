"""The internal-RL policy π(z_t | e_{1:t,l}) (§C.5): one recurrent layer with a Gaussian head.

It replaces the metacontroller's non-causal encoder and is called only at switch times; its
recurrent state carries what it saw at earlier decisions. The mean head starts at zero and the
log-std at ``init_log_std`` (0: unit variance), so the untrained policy samples codes from the
N(0, I) prior the controller decoder was trained under.

The layer (``block``): ``"rglru"``, the bare RG-LRU (its GeLU output gate the only nonlinearity),
or ``"residual"``, one block of the ``hawk`` stack at that width (``x = W e``,
``x + RG-LRU(norm x)``, ``x + MLP(norm x)``, GeLU), the head reading its final norm (measured on the
action-code MDP of ``experiments.action_codes``: README, "The learner alone").

The head (``head``): ``"gaussian"``, the paper's, over continuous codes; or ``"categorical"``, for
a decoder that reads a code as ``argmax z`` (the supervised subgoal controllers): a softmax over
the ``n_z`` codes whose draw is the one-hot ``z``. Its logits start at zero, so the untrained
policy picks uniformly. With a fixed unit std, making one of a few codes near certain through
``argmax`` takes the Gaussian's mean gaps of several units; the categorical head gets there with
the same learner far sooner (measured on the action-code MDP, README).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import chex
import jax
import jax.numpy as jnp

from hrl_internal.models import hawk, rglru

Params = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    d_model: int  # width of the residual stream it reads
    latent_dim: int  # n_z
    width: int = 256
    init_log_std: float = 0.0
    # Off by default: a learned log-std collapses within a few updates on sparse rewards (the PPO
    # ratio of old samples then explodes) and leaves the region of codes the decoder knows.
    learn_std: bool = False
    block: str = "rglru"  # or "residual" (see the module docstring)
    head: str = "gaussian"  # or "categorical" (see the module docstring)

    def __post_init__(self):
        if self.block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {self.block!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")

    @property
    def lru(self) -> rglru.RGLRUConfig:
        return rglru.RGLRUConfig(self.width)

    @property
    def residual_block(self) -> hawk.HawkConfig:
        """The ``"residual"`` block: one Hawk block whose "observation" is the read stream.
        Unit init scale (Var(w) = 1 / fan_in): the policy is trained from scratch, not stacked."""
        return hawk.HawkConfig(obs_size=self.d_model, action_size=1, d_model=self.width,
                               num_layers=1, lru_width=self.width, num_heads=1,
                               mlp_dim=2 * self.width, init_scale=1.0)


BLOCKS = ("rglru", "residual")
HEADS = ("gaussian", "categorical")


def init(key: jax.Array, config: PolicyConfig) -> Params:
    w = config.width
    head = {"mean": {"w": jnp.zeros((w, config.latent_dim)), "b": jnp.zeros((config.latent_dim,))},
            "log_std": jnp.full((config.latent_dim,), config.init_log_std, jnp.float32)}
    if config.block == "rglru":
        return {"lru": rglru.init(key, config.d_model, config.lru), **head}
    # Hawk's action and observation heads go unused: the code head above reads its final norm.
    stack = hawk.init(key, config.residual_block)
    return {name: stack[name] for name in ("embed", "blocks", "norm_f")} | head


def initial_state(config: PolicyConfig) -> jax.Array:
    """``[width]``, an episode start."""
    return rglru.initial_state(config.lru)


def step(params: Params, h: jax.Array, e: jax.Array, config: PolicyConfig
         ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(h [width], e [d_model]) -> (h, mean [n_z], log_std [n_z])``; for the categorical head
    ``mean`` holds the logits and ``log_std`` is unused."""
    chex.assert_shape(e, (config.d_model,))
    # Residual-stream scales differ by layer and model; an RMS norm makes the input scale-free.
    e = _rms(e)
    if config.block == "rglru":
        h, y = rglru.step(params["lru"], h, e, config.lru)
    else:
        x, state = hawk.lower(params, hawk.RecurrentState(h[None, None]), e[None],
                              config.residual_block, layer=1)
        h, y = state.h[0, 0], hawk.final_norm(params, x[0])
    mean = y @ params["mean"]["w"] + params["mean"]["b"]
    log_std = params["log_std"] if config.learn_std else jax.lax.stop_gradient(params["log_std"])
    return h, mean, log_std


def _rms(x: jax.Array) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.mean(x**2, axis=-1, keepdims=True) + 1e-6)


def log_prob(mean: jax.Array, log_std: jax.Array, z: jax.Array, head: str = "gaussian"
             ) -> jax.Array:
    """Log-density of ``z [..., n_z]`` under ``step``'s head: ``[...]`` (diagonal Gaussian, or the
    log-probability of the one-hot ``z``'s code)."""
    if head == "categorical":
        return jnp.sum(z * jax.nn.log_softmax(mean, axis=-1), axis=-1)
    var_term = ((z - mean) * jnp.exp(-log_std)) ** 2
    return -0.5 * jnp.sum(var_term + 2.0 * log_std + math.log(2.0 * math.pi), axis=-1)


def sample(key: jax.Array, mean: jax.Array, log_std: jax.Array, head: str = "gaussian"
           ) -> jax.Array:
    """A code ``[..., n_z]`` from ``step``'s head (one-hot for the categorical head)."""
    if head == "categorical":
        return jax.nn.one_hot(jax.random.categorical(key, mean), mean.shape[-1], dtype=mean.dtype)
    return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
