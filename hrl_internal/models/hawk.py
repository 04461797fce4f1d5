"""The ant base model (§C.1, D.1): a pre-norm Hawk stack (De et al. 2024) over observations.

Each block adds a recurrent branch and an MLP branch to the residual stream:

    x <- x + RG-LRU(RMSNorm(x)),   x <- x + W_2 GeLU(W_1 RMSNorm(x))

The RG-LRU branch is ``rglru`` with ``num_heads`` block-diagonal gates (Griffin's heads) and no
temporal convolution, so one-step acting carries just one ``[lru_width]`` vector per block. After a
final RMSNorm the heads give a diagonal Gaussian over the continuous action a_t and the mean of a
unit-variance Gaussian over the next observation o_{t+1} (Phase 1 loss −ln p(a_t | o_≤t)
− λ ln p(o_{t+1} | o_≤t), λ = 10 for the ant).

Pure functions over a params pytree, with the interface of ``transformer``: blocks are stacked
along a leading ``[num_layers]`` axis and run with ``lax.scan``, so depth costs no compile time;
``apply`` returns the residual stream and accepts a ``controller`` between blocks ``layer`` and
``layer + 1``; ``lower``/``upper`` split the stack at ``layer`` for acting one step at a time,
carrying each block's recurrent state instead of a KV cache.

Residual index convention: ``residuals[..., l, :]`` is the stream after ``l`` blocks (0 = after
the input embedding, ``num_layers`` = the last block's output, before the final norm). A controller
at ``layer = l`` reads ``residuals[..., l, :]`` and the blocks ``l+1 .. num_layers`` see its output.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp

from hrl_internal.models import rglru
from hrl_internal.models.metacontroller import resets_from_segments

Params = dict[str, Any]
# controller(e [..., time, d_model], t [time] int32) -> [..., time, d_model]
Controller = Callable[[jax.Array, jax.Array], jax.Array]
_LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True)
class HawkConfig:
    obs_size: int
    action_size: int
    d_model: int = 256
    num_layers: int = 8
    lru_width: int = 256
    num_heads: int = 8  # block-diagonal RG-LRU gates; must divide lru_width
    mlp_dim: int = 512
    init_scale: float = 0.1  # variance scale of the initialiser: Var(w) = init_scale / fan_in
    # The action log-std is squashed into this range: bounded below so the NLL cannot run to −∞
    # on near-deterministic expert actions, above so early samples stay in the action box.
    min_log_std: float = -5.0
    max_log_std: float = 1.0

    def __post_init__(self):
        for name in ("obs_size", "action_size", "d_model", "num_layers", "lru_width", "mlp_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.min_log_std < self.max_log_std:
            raise ValueError(f"min_log_std must be below max_log_std, got "
                             f"[{self.min_log_std}, {self.max_log_std}]")
        rglru.RGLRUConfig(self.lru_width, self.num_heads)  # validates num_heads

    @property
    def lru(self) -> rglru.RGLRUConfig:
        return rglru.RGLRUConfig(self.lru_width, self.num_heads)

    def validate_layer(self, layer: int) -> None:
        if not 0 <= layer <= self.num_layers:
            raise ValueError(f"layer must be in [0, {self.num_layers}], got {layer}")


def init(key: jax.Array, config: HawkConfig) -> Params:
    """Initial parameters. Block parameters carry a leading ``[num_layers]`` axis.

    When ``lru_width != d_model`` each block also has a ``proj`` back to ``d_model``.
    """
    c = config
    L, d, m, w = c.num_layers, c.d_model, c.mlp_dim, c.lru_width
    k_flat, k_lru = jax.random.split(key)
    # Every dense matrix outside the RG-LRU from one flat draw, sliced and reshaped: XLA on CPU
    # takes seconds to compile each multi-dimensional draw.
    shapes = {"embed": (c.obs_size, d), "action": (d, c.action_size),
              "log_std": (d, c.action_size), "obs": (d, c.obs_size),
              "w1": (L, d, m), "w2": (L, m, d)}
    if w != d:
        shapes["proj"] = (L, w, d)
    sizes = [math.prod(s) for s in shapes.values()]
    flat = jax.random.normal(k_flat, (sum(sizes),))
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    draw = {name: flat[o:o + n].reshape(s) * math.sqrt(c.init_scale / s[-2])
            for (name, s), o, n in zip(shapes.items(), offsets, sizes)}

    lru = jax.vmap(lambda k: rglru.init(k, d, c.lru))(jax.random.split(k_lru, L))
    for name in ("in", "gate_r", "gate_i", "gate_out", "out"):
        # rglru draws Var(w) = 1 / fan_in: rescale to this model's variance scale.
        lru[name]["w"] = lru[name]["w"] * math.sqrt(c.init_scale)
    blocks = {"norm_lru": {"scale": jnp.ones((L, d))}, "lru": lru,
              "norm_mlp": {"scale": jnp.ones((L, d))},
              "mlp": {"w1": draw["w1"], "b1": jnp.zeros((L, m)),
                      "w2": draw["w2"], "b2": jnp.zeros((L, d))}}
    if w != d:
        blocks["proj"] = {"w": draw["proj"], "b": jnp.zeros((L, d))}
    # The log-std starts at 0 (unit std) when the range allows: the initial action NLL is then
    # that of N(0, I), not dominated by a tiny std.
    frac = (min(max(0.0, c.min_log_std), c.max_log_std) - c.min_log_std) / (
        c.max_log_std - c.min_log_std)
    frac = min(max(frac, 1e-3), 1 - 1e-3)
    return {
        "embed": {"w": draw["embed"], "b": jnp.zeros((d,))},
        "blocks": blocks,
        "norm_f": {"scale": jnp.ones((d,))},
        "action_head": {"w": draw["action"], "b": jnp.zeros((c.action_size,))},
        "log_std_head": {"w": draw["log_std"],
                         "b": jnp.full((c.action_size,), math.log(frac / (1 - frac)))},
        "obs_head": {"w": draw["obs"], "b": jnp.zeros((c.obs_size,))},
    }


def _rms_norm(x: jax.Array, p: Params) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + 1e-6) * p["scale"]


def _linear(p: Params, x: jax.Array) -> jax.Array:
    return x @ p["w"] + p["b"]


def _mlp(p: Params, x: jax.Array) -> jax.Array:
    """The MLP branch added to ``x [..., d]`` (pre-norm)."""
    h = _rms_norm(x, p["norm_mlp"])
    return x + jax.nn.gelu(h @ p["mlp"]["w1"] + p["mlp"]["b1"]) @ p["mlp"]["w2"] + p["mlp"]["b2"]


def _write(p: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """Adds the RG-LRU output ``y [..., lru_width]`` to the stream ``x [..., d]``."""
    return x + (_linear(p["proj"], y) if "proj" in p else y)


def _slice_blocks(blocks: Params, start: int, stop: int) -> Params:
    return jax.tree.map(lambda a: a[start:stop], blocks)


def embed(params: Params, obs: jax.Array, config: HawkConfig) -> jax.Array:
    """``[..., obs_size] -> [..., d_model]``: the residual stream at layer 0."""
    chex.assert_axis_dimension(obs, -1, config.obs_size)
    return _linear(params["embed"], obs)


def final_norm(params: Params, e: jax.Array) -> jax.Array:
    """The RMSNorm after the last block, which every head reads: ``[..., d] -> [..., d]``."""
    return _rms_norm(e, params["norm_f"])


def heads(params: Params, e: jax.Array, config: HawkConfig | None = None
          ) -> dict[str, jax.Array]:
    """Final norm and output heads of a residual stream ``e [..., d_model]``.

    Returns ``action_mean [..., A]``, ``action_log_std [..., A]`` (state-dependent, squashed into
    ``[min_log_std, max_log_std]``) and ``obs_mean [..., obs_size]``. Without ``config`` the
    bounds are ``HawkConfig``'s defaults; pass it when a config changes them.
    """
    lo = HawkConfig.min_log_std if config is None else config.min_log_std
    hi = HawkConfig.max_log_std if config is None else config.max_log_std
    h = final_norm(params, e)
    raw = _linear(params["log_std_head"], h)
    return {"action_mean": _linear(params["action_head"], h),
            "action_log_std": lo + (hi - lo) * jax.nn.sigmoid(raw),
            "obs_mean": _linear(params["obs_head"], h)}


def run_blocks(params: Params, e: jax.Array, start: int, stop: int, config: HawkConfig,
               resets: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Blocks ``start+1 .. stop`` over ``e [T, d]`` from zero recurrent states.

    ``resets [T]`` bool zeroes every block's state before step t (packed episodes).
    Returns ``(e [T, d], residuals [stop-start, T, d])``.
    """
    def body(x, p):
        y = rglru.apply(p["lru"], _rms_norm(x, p["norm_lru"]), config.lru, resets=resets)
        x = _mlp(p, _write(p, x, y))
        return x, x
    return jax.lax.scan(body, e, _slice_blocks(params["blocks"], start, stop))


def apply(params: Params, obs: jax.Array, config: HawkConfig, *,
          controller: Controller | None = None, layer: int | None = None,
          segments: jax.Array | None = None) -> tuple[dict[str, jax.Array], jax.Array]:
    """Full-sequence forward pass from zero recurrent states.

    Args:
      obs: [batch, time, obs_size] observations o_0..o_{T-1}.
      segments: optional [batch, time] int, episode ids of packed rows (``data.packing``); the
        recurrent states reset where the id changes, so each episode is computed as if alone.
      controller: optional ``(e [batch, time, d], t [time]) -> e'`` applied at ``layer``.
    Returns:
      ``outputs``: ``action_mean``, ``action_log_std`` [batch, time, A] (a_t given o_0..o_t) and
      ``obs_mean`` [batch, time, obs_size] (o_{t+1}); ``residuals [batch, time, num_layers + 1,
      d_model]``.
    """
    chex.assert_rank(obs, 3)
    chex.assert_axis_dimension(obs, 2, config.obs_size)
    L = config.num_layers
    if controller is None:
        layer = L
    elif layer is None:
        raise ValueError("a controller needs the layer it acts at")
    config.validate_layer(layer)
    resets = None
    if segments is not None:
        chex.assert_shape(segments, obs.shape[:2])
        resets = resets_from_segments(segments)
    run = jax.vmap(run_blocks, in_axes=(None, 0, None, None, None, None if resets is None else 0))
    e0 = embed(params, obs, config)
    e_l, lower_res = run(params, e0, 0, layer, config, resets)
    if controller is not None:
        e_l = controller(e_l, jnp.arange(obs.shape[1]))
        chex.assert_equal_shape([e_l, e0])
    e_top, upper_res = run(params, e_l, layer, L, config, resets)
    residuals = jnp.concatenate(
        [e0[:, :, None], jnp.swapaxes(lower_res, 1, 2), jnp.swapaxes(upper_res, 1, 2)], axis=2)
    return heads(params, e_top, config), residuals


class RecurrentState(NamedTuple):
    """The RG-LRU states of a contiguous run of blocks, for a batch of sequences."""

    h: jax.Array  # [num_blocks, batch, lru_width]


def init_state(config: HawkConfig, num_blocks: int, batch: int) -> RecurrentState:
    return RecurrentState(jnp.zeros((num_blocks, batch, config.lru_width)))


def init_states(config: HawkConfig, layer: int, batch: int
                ) -> tuple[RecurrentState, RecurrentState]:
    """Zero ``(lower, upper)`` states (episode starts) for acting with the stack split at
    ``layer``: blocks ``1..layer`` and ``layer+1..num_layers``."""
    config.validate_layer(layer)
    return (init_state(config, layer, batch),
            init_state(config, config.num_layers - layer, batch))


def _step_blocks(params: Params, state: RecurrentState, x: jax.Array, start: int, stop: int,
                 config: HawkConfig) -> tuple[jax.Array, RecurrentState]:
    """Blocks ``start+1 .. stop`` on one new token per sequence ``x [B, d]``."""
    chex.assert_shape(state.h, (stop - start, x.shape[0], config.lru_width))
    step = jax.vmap(rglru.step, in_axes=(None, 0, 0, None))

    def body(x, ph):
        p, h = ph
        h, y = step(p["lru"], h, _rms_norm(x, p["norm_lru"]), config.lru)
        return _mlp(p, _write(p, x, y)), h
    x, h = jax.lax.scan(body, x, (_slice_blocks(params["blocks"], start, stop), state.h))
    return x, RecurrentState(h)


def lower(params: Params, state: RecurrentState, obs_t: jax.Array, config: HawkConfig,
          layer: int) -> tuple[jax.Array, RecurrentState]:
    """Embeds one observation per sequence ``[B, obs_size]`` and runs blocks ``1..layer``:
    ``(e_t [B, d], state)``. Zero the state (``init_states``) to start an episode."""
    chex.assert_shape(obs_t, (state.h.shape[1], config.obs_size))
    return _step_blocks(params, state, embed(params, obs_t, config), 0, layer, config)


def upper(params: Params, state: RecurrentState, e_t: jax.Array, config: HawkConfig,
          layer: int) -> tuple[dict[str, jax.Array], RecurrentState]:
    """Runs blocks ``layer+1..num_layers`` on ``e_t [B, d]`` and the heads: ``(outputs, state)``
    with each head ``[B, ...]``."""
    chex.assert_shape(e_t, (state.h.shape[1], config.d_model))
    x, state = _step_blocks(params, state, e_t, layer, config.num_layers, config)
    return heads(params, x, config), state


def action_nll(outputs: dict[str, jax.Array], actions: jax.Array) -> jax.Array:
    """−ln N(actions; action_mean, diag exp(action_log_std)²), summed over action dims:
    ``[..., A] -> [...]``."""
    mean, log_std = outputs["action_mean"], outputs["action_log_std"]
    chex.assert_equal_shape([mean, actions])
    z = (actions - mean) * jnp.exp(-log_std)
    return jnp.sum(0.5 * jnp.square(z) + log_std + 0.5 * _LOG_2PI, axis=-1)


def obs_nll(outputs: dict[str, jax.Array], next_obs: jax.Array) -> jax.Array:
    """Unit-variance Gaussian NLL of ``next_obs [..., obs_size]`` without its constant,
    ``0.5 ‖o_{t+1} − obs_mean‖² / obs_size``: ``[...]``.

    A MEAN over observation dims, not a sum, so the weight λ = 10 does not grow with obs_size.
    """
    chex.assert_equal_shape([outputs["obs_mean"], next_obs])
    return 0.5 * jnp.mean(jnp.square(next_obs - outputs["obs_mean"]), axis=-1)


def sample_action(key: jax.Array, outputs: dict[str, jax.Array]) -> jax.Array:
    """A draw from the action Gaussian: ``[..., A]``."""
    mean = outputs["action_mean"]
    return mean + jnp.exp(outputs["action_log_std"]) * jax.random.normal(key, mean.shape)


def mean_action(outputs: dict[str, jax.Array]) -> jax.Array:
    """The Gaussian's mean (greedy action): ``[..., A]``."""
    return outputs["action_mean"]
