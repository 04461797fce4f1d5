"""Hawk's recurrent block (De et al. 2024, "Griffin"): a real-gated linear recurrent unit (RG-LRU).

    u_t = W_in x_t,   r_t = σ(W_r u_t),   i_t = σ(W_i u_t),   a_t = σ(Λ)^(c r_t),  c = 8
    h_t = a_t ⊙ h_{t-1} + sqrt(1 - a_t²) ⊙ (i_t ⊙ u_t)
    y_t = W_out (GeLU(W_g x_t) ⊙ h_t)

All gates depend on x_t alone, so ``apply`` computes them for the whole sequence at once and scans
only the elementwise recurrence (``lax.scan``: at T ≈ 100 it compiles and runs faster than an
associative scan); ``step`` shares ``_gates``, so the two agree to float error.
The block has no temporal convolution (Griffin's has one): one-token steps then need no buffer,
and resets and right-to-left runs stay exact. Λ starts with a^c uniform in [0.9, 0.999], i.e.
memory timescales of 10 to 1000 steps at r = 1.

With ``num_heads > 1`` the gate weights W_r, W_i are block-diagonal over heads (Griffin's
"heads"), stored as ``[num_heads, width/num_heads, width/num_heads]``: head k's gates read only
the k-th slice of u_t. With the default single head they are dense ``[width, width]`` matrices.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import chex
import jax
import jax.numpy as jnp

Params = dict[str, Any]
_C = 8.0
# sqrt'(0) is infinite: keep 1 - a² off zero so gradients stay bounded when a_t -> 1.
_MIN_SQUARE = 1e-6


@dataclasses.dataclass(frozen=True)
class RGLRUConfig:
    width: int
    num_heads: int = 1  # block-diagonal gate weights over this many heads

    def __post_init__(self):
        if self.width <= 0:
            raise ValueError(f"width must be positive, got {self.width}")
        if self.num_heads <= 0 or self.width % self.num_heads:
            raise ValueError(f"num_heads must be positive and divide width {self.width}, "
                             f"got {self.num_heads}")


def init(key: jax.Array, in_dim: int, config: RGLRUConfig) -> Params:
    """Parameters of a block reading ``[..., in_dim]`` and writing ``[..., width]``."""
    w = config.width
    k_w, k_a = jax.random.split(key)
    # One flat draw, reshaped: XLA on CPU takes seconds to compile each multi-dimensional draw.
    n_x = 2 * in_dim * w
    heads, k = config.num_heads, w // config.num_heads
    flat = jax.random.normal(k_w, (n_x + 2 * heads * k * k + w * w,))
    w_in, w_out_gate = flat[:n_x].reshape(2, in_dim, w) / math.sqrt(in_dim)
    if heads == 1:
        w_r, w_i, w_out = flat[n_x:].reshape(3, w, w) / math.sqrt(w)
    else:
        n_g = 2 * heads * k * k
        w_r, w_i = flat[n_x:n_x + n_g].reshape(2, heads, k, k) / math.sqrt(k)
        w_out = flat[n_x + n_g:].reshape(w, w) / math.sqrt(w)
    a = jax.random.uniform(k_a, (w,), minval=0.9, maxval=0.999) ** (1.0 / _C)  # a^c uniform
    dense = lambda m: {"w": m, "b": jnp.zeros((w,))}
    return {"in": dense(w_in), "gate_r": dense(w_r), "gate_i": dense(w_i),
            "gate_out": dense(w_out_gate), "out": dense(w_out),
            "lambda": jnp.log(a) - jnp.log1p(-a)}  # σ(Λ) = a


def initial_state(config: RGLRUConfig) -> jax.Array:
    """The zero state ``[width]`` (an episode start)."""
    return jnp.zeros((config.width,))


def _linear(p: Params, x: jax.Array) -> jax.Array:
    return x @ p["w"] + p["b"]


def _gate_linear(p: Params, u: jax.Array) -> jax.Array:
    """Dense ``[width, width]`` or block-diagonal ``[heads, width/heads, width/heads]`` weights."""
    if p["w"].ndim == 2:
        return _linear(p, u)
    heads, k, _ = p["w"].shape
    blocks = u.reshape(u.shape[:-1] + (heads, k))
    return jnp.einsum("...hi,hij->...hj", blocks, p["w"]).reshape(u.shape) + p["b"]


def _gates(params: Params, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``x [..., in_dim]`` -> decay ``a``, input ``b``, output gate ``g``, each ``[..., width]``."""
    u = _linear(params["in"], x)
    r = jax.nn.sigmoid(_gate_linear(params["gate_r"], u))
    i = jax.nn.sigmoid(_gate_linear(params["gate_i"], u))
    log_a = -_C * r * jax.nn.softplus(-params["lambda"])  # log σ(Λ)^(c r), stable for Λ ≫ 0
    multiplier = jnp.sqrt(jnp.maximum(-jnp.expm1(2.0 * log_a), _MIN_SQUARE))
    return jnp.exp(log_a), multiplier * i * u, jax.nn.gelu(_linear(params["gate_out"], x))


def apply(params: Params, x: jax.Array, config: RGLRUConfig, *, resets: jax.Array | None = None,
          reverse: bool = False) -> jax.Array:
    """Runs the block over a sequence from the zero state.

    Args:
      x: [T, in_dim].
      resets: optional [T] bool; True at t zeroes the state before step t is processed (packed
        rows). With ``reverse`` the scan runs T-1 -> 0, so pass segment *ends* there.
      reverse: run right-to-left (h_t depends on x_t..x_{T-1}).
    Returns:
      y: [T, width].
    """
    chex.assert_rank(x, 2)
    a, b, g = _gates(params, x)
    if resets is not None:
        chex.assert_shape(resets, (x.shape[0],))
        a = jnp.where(resets[:, None], 0.0, a)

    def body(h, ab):
        h = ab[0] * h + ab[1]
        return h, h

    _, h = jax.lax.scan(body, initial_state(config), (a, b), reverse=reverse)
    return _linear(params["out"], g * h)


def step(params: Params, h: jax.Array, x_t: jax.Array, config: RGLRUConfig
         ) -> tuple[jax.Array, jax.Array]:
    """One causal step: ``h [width], x_t [in_dim] -> (h [width], y_t [width])``.

    Zero ``h`` (``initial_state``) to start a new episode.
    """
    chex.assert_shape(h, (config.width,))
    a, b, g = _gates(params, x_t)
    h = a * h + b
    return h, _linear(params["out"], g * h)
