"""CompILE (Kipf et al. 2019), the paper's latent-variable baseline (§C.4.3): segments and a code
per segment inferred from the raw observations, decoded into the same low-rank edit of the frozen
base model at the same layer as the metacontroller's.

    h_t = f_enc(o_{1:t})                   the base model's embedding and blocks 1..l, a trainable
                                           copy initialised from the pretrained base
    b_i ~ RelaxedCategorical(positions after b_{i-1} ∪ {none}),  i = 1..M-1   segment boundaries
    c_i(t) = P(b_i <= t),  m_1 = 1 - c_1,  m_j = c_{j-1} - c_j,  m_M = c_{M-1}  segment masks
    (μ_j, log σ²_j) = f_z(Σ_t m_j(t) h_t / Σ_t m_j(t)),  z_j ~ N(μ_j, σ²_j)     one code per segment
    z_t = Σ_j m_j(t) z_j,   ê_t = e_t + U(z_t) e_t                            the metacontroller's
                                                                              decoder
Loss: action NLL + α (KL_z + KL_b) per step (or α_z KL_z + α_β KL_b with the paper's separate
weights: ``boundary_kl_scale`` = α_β / α_z scales KL_b's gradient, not its value), where KL_b is
the KL of each boundary's distribution to a Poisson prior on segment lengths (rate λ, the paper's
"prior switching rate 10"): a segment starting at s ends at t with probability Poisson(t - s; λ).

Two choices of ours, named in the README. A "none" option ends the segmentation early, so an
episode has 1..M segments (the original CompILE always has M; the gridworld's episodes have 1 to 3
subgoal segments). And training decodes the mask-weighted code z_t (one pass of the upper blocks)
instead of decoding every segment's code and weighting the M likelihoods: the two agree wherever
the masks are hard, which they are in evaluation (arg-max boundaries, z_j = μ_j).

All functions act on one packed row ``[T, ...]`` (``segments [T]`` episode ids, padding -1); every
episode is segmented as if alone in its row. ``unroll`` returns ``MetacontrollerOutputs``, so the
metacontroller's training, scoring and analyses read CompILE's codes unchanged: β_t is the
probability that a boundary falls at t (1 at each episode's first step).
"""
from __future__ import annotations

import math
from typing import Any

import chex
import jax
import jax.numpy as jnp

from hrl_internal.models import backbone, metacontroller
from hrl_internal.models.metacontroller import MetacontrollerConfig, MetacontrollerOutputs

Params = dict[str, Any]
_NEG = -1e9  # a logit that no position may take (finite: 0 · log q stays 0, not NaN)


def init(key: jax.Array, config: MetacontrollerConfig, base: Params, layer: int) -> Params:
    """CompILE's parameters: ``encoder`` (a copy of ``base``'s embedding and blocks 1..``layer``),
    the boundary and code heads, the "none" logits ``[M-1]`` and the metacontroller's
    ``decoder`` (same shapes and initialisation)."""
    c = config
    spec = {
        "boundary": {"hidden": metacontroller._dense(c.d_model, c.encoder_hidden),
                     "out": metacontroller._dense(c.encoder_hidden, 1, 0.1)},
        # Small output layer: μ ≈ 0, log σ² ≈ 0, so the codes start near the N(0, I) prior.
        "latent": {"hidden": metacontroller._dense(c.d_model, c.encoder_hidden),
                   "out": metacontroller._dense(c.encoder_hidden, 2 * c.latent_dim, 0.1)},
        "none": metacontroller._Normal((c.max_segments - 1,), 0),
    }
    k_heads, k_meta = jax.random.split(key)
    params = metacontroller._draw(k_heads, spec)
    params["decoder"] = metacontroller.init(k_meta, c)["decoder"]
    params["encoder"] = {"embed": base["embed"],
                         "blocks": jax.tree.map(lambda a: a[:layer], base["blocks"])}
    return params


def _episode_index(segments: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``segments [T]`` -> ``(ep [T], first [T], length [T])``: the episode index of each step
    (padding is an episode of its own), its first step and its length."""
    T = segments.shape[0]
    resets = metacontroller.resets_from_segments(segments)
    steps = jnp.arange(T)
    ep = jnp.cumsum(resets) - 1
    first = jax.lax.cummax(jnp.where(resets, steps, 0))
    ends = jnp.concatenate([resets[1:], jnp.ones((1,), bool)])
    last = jax.lax.cummin(jnp.where(ends, steps, T - 1), reverse=True)
    return ep, first, last - first + 1


def _seg_sum(x: jax.Array, ep: jax.Array) -> jax.Array:
    return jax.ops.segment_sum(x, ep, num_segments=ep.shape[0])


def _categorical(scores: jax.Array, none: jax.Array, ep: jax.Array
                 ) -> tuple[jax.Array, jax.Array]:
    """A softmax per episode over its positions' ``scores [T]`` and its "none" score ``none [T]``
    (indexed by episode): ``(p [T], p_none [T] by episode)``."""
    top = jnp.maximum(jax.ops.segment_max(scores, ep, num_segments=ep.shape[0]), none)
    top = jax.lax.stop_gradient(top)
    w = jnp.exp(scores - top[ep])
    w_none = jnp.exp(none - top)
    total = _seg_sum(w, ep) + w_none
    return w / total[ep], w_none / total


def _argmax(scores: jax.Array, none: jax.Array, ep: jax.Array) -> jax.Array:
    """``_categorical``'s hard form over the positions: a one-hot of each episode's best score,
    all zeros where "none" wins (ties: all of them, measure zero for real-valued scores)."""
    best = jax.ops.segment_max(scores, ep, num_segments=ep.shape[0])
    real = (best >= none) & (best > _NEG / 2)
    return ((scores == best[ep]) & real[ep]).astype(jnp.float32)


def log_poisson(k: jax.Array, rate: float) -> jax.Array:
    """``ln Poisson(k; rate)`` for integer-valued ``k >= 0``."""
    return k * math.log(rate) - rate - jax.lax.lgamma(k + 1.0)


def encode(params: Params, obs: jax.Array, segments: jax.Array, model: Any, layer: int
           ) -> jax.Array:
    """``obs [B, T, obs_size], segments [B, T] -> h [B, T, d_model]``: the encoder's copy of the
    base model's lower half on the raw observations."""
    enc = params["encoder"]
    return backbone.run_blocks(enc, backbone.module(model).embed(enc, obs, model), 0, layer,
                               model, segments)


def unroll(params: Params, h: jax.Array, segments: jax.Array, key: jax.Array,
           config: MetacontrollerConfig, *, deterministic: bool = False,
           noise_scale: float | jax.Array = 1.0) -> MetacontrollerOutputs:
    """Segments one packed row and emits the code in force at each step.

    Args:
      h: [T, d_model] the encoder's states (``encode``).
      segments: [T] int episode ids of the packed row (padding -1).
      key: PRNG key for the Gumbel noise of the boundaries and the codes' samples.
      deterministic: arg-max boundaries and z_j = μ_j (evaluation).
      noise_scale: z_j = μ_j + noise_scale · σ_j ε_j (as ``metacontroller.unroll``).
    Returns:
      ``MetacontrollerOutputs``: z [T, n_z] (the mask-weighted code), beta [T] (boundary
      probability), mu, log_var [T, n_z] (mask-weighted), kl [T] (each episode's KL_z + KL_b
      spread evenly over its steps).
    """
    T = h.shape[0]
    c = config
    M, n_z = c.max_segments, c.latent_dim
    chex.assert_shape(h, (T, c.d_model))
    chex.assert_shape(segments, (T,))
    ep, first, length = _episode_index(segments)
    pos = jnp.arange(T) - first
    x = metacontroller.observe(h, c)
    logits = metacontroller._mlp(params["boundary"], x)[:, 0]
    k_b, k_z = jax.random.split(key)
    gumbel = jnp.zeros((M - 1, 2, T)) if deterministic else jax.random.gumbel(k_b, (M - 1, 2, T))
    tau = c.segment_temperature
    # p(b_i = t | b_{i-1} = s) = Poisson(t - s; λ) for t > s in the same episode.
    gap = jnp.arange(T)[:, None] - jnp.arange(T)[None, :]  # [t, s]: t - s
    transition = jnp.where((ep[:, None] == ep[None, :]) & (gap > 0), jnp.exp(log_poisson(
        jnp.maximum(gap, 0).astype(jnp.float32), c.segment_rate)), 0.0)  # [t, s]

    prev = (pos == 0).astype(jnp.float32)  # b_0: the episode's first step
    prev_c = jnp.ones((T,))  # c_0(t) = P(b_0 <= t)
    bs, cs, kl_b = [], [], jnp.zeros((T,))
    for i in range(M - 1):
        # A boundary falls strictly after the previous one: positions t with b_{i-1} <= t - 1.
        after = jnp.concatenate([jnp.zeros((1,)), prev_c[:-1]]) * (pos > 0)
        masked = jnp.where(after > 0, logits + jnp.log(jnp.clip(after, 1e-6, 1.0)), _NEG)
        none = jnp.full((T,), params["none"][i])
        q, q_none = _categorical(masked, none, ep)
        prior = transition @ prev  # [T]: p(b_i = t)
        p_none = jnp.clip(1.0 - _seg_sum(prior, ep), 1e-12, 1.0)
        kl_b = kl_b + _seg_sum(q * (jnp.log(q + 1e-12) - jnp.log(prior + 1e-12)), ep) \
            + q_none * (jnp.log(q_none + 1e-12) - jnp.log(p_none))
        if deterministic:
            b = _argmax(masked, none, ep)
        else:
            b, _ = _categorical((masked + gumbel[i, 0]) / tau, (none + gumbel[i, 1]) / tau, ep)
        running = jnp.cumsum(b)
        prev_c = running - running[first] + b[first]  # P(b_i <= t) within the episode
        prev = b
        bs.append(b)
        cs.append(prev_c)

    ones = jnp.ones((T,))
    masks = jnp.stack([ones - cs[0]] + [cs[j - 1] - cs[j] for j in range(1, M - 1)]
                      + [cs[-1]], axis=-1)  # [T, M]
    # Relaxed boundaries need not keep their order (c_j may exceed c_{j-1} where the masking of
    # the earlier positions is soft): clip the masks at 0 and renormalise, so that each pooled
    # state is a convex combination of the h_t and stays bounded.
    masks = jnp.maximum(masks, 0.0)
    masks = masks / jnp.sum(masks, axis=-1, keepdims=True)
    # Each episode's pooled encoder state per segment, and its code.
    weight = _seg_sum(masks, ep)  # [T (episodes), M]
    pooled = _seg_sum(masks[:, :, None] * x[:, None, :], ep) / (weight[:, :, None] + 1e-6)
    mu, log_var = jnp.split(metacontroller._mlp(params["latent"], pooled), 2, axis=-1)
    eps = jnp.zeros((T, M, n_z)) if deterministic else jax.random.normal(k_z, (T, M, n_z))
    z_seg = mu + jnp.exp(0.5 * log_var) * eps * noise_scale  # [T (episodes), M, n_z]
    # Segment j exists iff boundary j-1 is a position, not "none" (segment 1 always does).
    present = jnp.concatenate([jnp.ones((T, 1)), jnp.stack([_seg_sum(b, ep) for b in bs], -1)],
                              axis=-1)  # [T (episodes), M]
    kl_z = jnp.sum(present * metacontroller.kl_to_standard_normal(mu, log_var), axis=-1)

    def at_steps(per_segment):  # [episodes, M, n] -> [T, n], mask-weighted at each step
        return jnp.einsum("tm,tmn->tn", masks, per_segment[ep])

    beta = jnp.where(pos == 0, 1.0, jnp.clip(sum(bs), 0.0, 1.0))
    s = c.boundary_kl_scale
    if s != 1.0:
        # The value stays the rate KL_z + KL_b (the rate-distortion figures read it); the
        # gradient is that of KL_z + s · KL_b.
        kl_b = s * kl_b + jax.lax.stop_gradient((1.0 - s) * kl_b)
    kl = (kl_z + kl_b)[ep] / length
    return MetacontrollerOutputs(at_steps(z_seg), beta, at_steps(mu), at_steps(log_var), kl)
