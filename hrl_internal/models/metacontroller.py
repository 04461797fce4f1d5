"""The metacontroller (§D.2): a latent-variable model that edits the frozen base model's residual
stream e_{t,l} at the controlled layer l.

    h_t = GRU(e_t, h_{t-1})                                 history (causal)
    s = f_emb(e_{1:T})                                      sequence embedding (non-causal: one
                                                            vector per episode, or read per step)
    (μ_t, log σ²_t) = f_enc(e_t, h_{t-1}, s),  z̃_t ~ N(μ_t, σ²_t)
    β_t = f_switch(e_t, h_{t-1}, z_{t-1}) ∈ [0, 1]          switching unit (causal, no s)
    z_t = β_t z̃_t + (1 - β_t) z_{t-1}                       temporal integration
    U_t = f_hyp(z_t) = B_t A_t,   ê_t = e_t + U_t e_t        controller decoder

All functions act on one row ``[T, ...]``; ``jax.vmap`` them over a batch. Packed rows (several
episodes back to back) are handled by ``resets [T]`` (True at each episode's first step): every
episode is computed exactly as if it were alone in its row.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp

from hrl_internal.models import intervention, rglru

Params = dict[str, Any]
VARIANTS = ("standard", "forced_switch", "compile")
SEQUENCE_EMBEDDINGS = ("episode", "step")
# Initial edit size |U e| / |e|: small so the base model's behaviour is intact at the start of
# training, nonzero so that gradients reach both low-rank factors.
_EDIT_SCALE = 0.02


@dataclasses.dataclass(frozen=True)
class MetacontrollerConfig:
    d_model: int
    latent_dim: int = 8  # n_z
    history_dim: int = 32  # n_h, GRU
    embed_dim: int = 32  # n_s
    encoder_hidden: int = 64
    decoder_hidden: int = 32
    rank: int = 16  # rank >= d_model makes U a full linear map (ant)
    switch_hidden: int = 64
    variant: str = "standard"  # "forced_switch": β ≡ 1; "compile": the CompILE baseline
    # RMS-normalise e_t where the metacontroller reads it (not where U_t edits it): the ant's Hawk
    # stream has entries far above 1, and the encoder's initial log σ² reached 34 on it.
    input_norm: bool = False
    # > 0: a Gumbel-sigmoid switching unit (the paper's gridworld rate-distortion runs):
    # β = σ((logit + logistic noise) / τ) in training, σ(logit / τ) otherwise. 0: σ(logit).
    gate_temperature: float = 0.0
    # > 0: a straight-through hard gate in training, at this threshold: the forward pass switches
    # (z_t = z̃_t) iff β_t >= threshold and otherwise keeps z_{t-1} exactly, as internal RL acts;
    # the gradient flows through the soft β. A soft β below the threshold cannot then trickle a
    # fraction of each step's z̃_t into z_t. 0: the paper's soft integration.
    straight_through: float = 0.0
    # Not the paper's: the edit reads e − ē, with ē [d] the residual's mean over the training data
    # (``params["decoder"]["centre"]``, set once before training and never trained), so that
    # ê = e + U(z)(e − ē) averages to e over the data: no code can act as one fixed vector added
    # whatever e holds, and a code's edit must depend on what the stream carries (which colour
    # is where), as a subgoal's does.
    edit_centre: bool = False
    # "episode": one s per episode (the paper's s(e_{1:T})); "step": s_t read at t, whose backward
    # half carries the next steps (measured: it leaks the next moves into the codes, but it is the
    # one of the two under which the gate learns to switch on a CPU budget; see the README).
    sequence_embedding: str = "step"
    # variant "compile" (``models.compile``): at most M segments per episode, the prior's mean
    # segment length λ, and the Gumbel-softmax temperature of the boundaries.
    max_segments: int = 4
    segment_rate: int = 10
    segment_temperature: float = 1.0
    # variant "compile": the boundaries' KL enters the gradient with this factor times the codes'
    # (the paper's separate α_β = α_z · scale); the reported KL stays the unweighted rate.
    boundary_kl_scale: float = 1.0

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "gate_temperature":
                if not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"gate_temperature must be >= 0, got {value!r}")
                continue
            if f.name == "straight_through":
                if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                    raise ValueError(f"straight_through must be in [0, 1), got {value!r}")
                continue
            if f.name == "segment_temperature":
                if not isinstance(value, (int, float)) or value <= 0:
                    raise ValueError(f"segment_temperature must be > 0, got {value!r}")
                continue
            if f.name == "boundary_kl_scale":
                if not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"boundary_kl_scale must be >= 0, got {value!r}")
                continue
            if f.name == "sequence_embedding":
                if value not in SEQUENCE_EMBEDDINGS:
                    raise ValueError(f"sequence_embedding must be one of {SEQUENCE_EMBEDDINGS}, "
                                     f"got {value!r}")
                continue
            if f.name in ("variant", "input_norm", "edit_centre"):
                continue
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{f.name} must be a positive int, got {value!r}")
        if self.max_segments < 2:
            raise ValueError(f"max_segments must be >= 2, got {self.max_segments}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")


class MetacontrollerOutputs(NamedTuple):
    z: jax.Array  # [T, n_z] integrated codes
    beta: jax.Array  # [T] switching gate
    mu: jax.Array  # [T, n_z]
    log_var: jax.Array  # [T, n_z]
    kl: jax.Array  # [T] KL(N(μ_t, σ²_t) || N(0, I))


class _Normal(NamedTuple):
    """A parameter to draw as ``std * N(0, 1)`` of ``shape`` (std 0: zeros)."""

    shape: tuple[int, ...]
    std: float


def _dense(fan_in: int, fan_out: int, scale: float = 1.0) -> Params:
    return {"w": _Normal((fan_in, fan_out), scale / math.sqrt(fan_in)), "b": _Normal((fan_out,), 0)}


def _factor(fan_in: int, shape: tuple[int, int], std: float) -> Params:
    """A hypernetwork head emitting a ``shape`` matrix with entries of std ≈ ``std`` both from its
    bias and from GeLU inputs of unit scale; the bias keeps U ≠ 0 at z = 0 (e.g. μ at init)."""
    gelu_rms = 0.65  # rms of GeLU(N(0, 1))
    return {"w": _Normal((fan_in,) + shape, std / (gelu_rms * math.sqrt(fan_in))),
            "b": _Normal(shape, std)}


def _draw(key: jax.Array, spec: Params) -> Params:
    """Fills a tree of ``_Normal`` from one flat draw: XLA on CPU takes seconds to compile each
    multi-dimensional ``jax.random`` draw, so one draw per layer dominated ``init``."""
    leaves, treedef = jax.tree.flatten(spec, is_leaf=lambda x: isinstance(x, _Normal))
    sizes = [math.prod(leaf.shape) for leaf in leaves]
    flat = jax.random.normal(key, (sum(sizes),))
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    return treedef.unflatten([leaf.std * flat[o:o + n].reshape(leaf.shape)
                              for leaf, o, n in zip(leaves, offsets, sizes)])


def _linear(p: Params, x: jax.Array) -> jax.Array:
    return x @ p["w"] + p["b"]


def _mlp(p: Params, x: jax.Array) -> jax.Array:
    return _linear(p["out"], jax.nn.gelu(_linear(p["hidden"], x)))


def init(key: jax.Array, config: MetacontrollerConfig) -> Params:
    c = config
    d, nz, nh, ns, r = c.d_model, c.latent_dim, c.history_dim, c.embed_dim, c.rank
    k_lru, k_rest = jax.random.split(key)
    lru = rglru.RGLRUConfig(ns)
    params = _draw(k_rest, {
        "embedder": {"proj": _dense(2 * ns, ns)},
        "gru": {"wi": _dense(d, 3 * nh), "wh": _dense(nh, 3 * nh)},
        # Small output layer: μ ≈ 0, log σ² ≈ 0, so z̃ starts near the N(0, I) prior.
        "encoder": {"hidden": _dense(d + nh + ns, c.encoder_hidden),
                    "out": _dense(c.encoder_hidden, 2 * nz, 0.1)},
        # Small output layer and zero bias: β starts near 0.5, where the sigmoid is not saturated.
        "switch": {"hidden": _dense(d + nh + nz, c.switch_hidden),
                   "out": _dense(c.switch_hidden, 1, 0.1)},
        # A rows ~ N(0, 1/d) and B entries ~ N(0, ε²/r) give |B A e| ≈ ε |e|.
        "decoder": {"hidden": _dense(nz, c.decoder_hidden),
                    "a": _factor(c.decoder_hidden, (r, d), 1 / math.sqrt(d)),
                    "b": _factor(c.decoder_hidden, (d, r), _EDIT_SCALE / math.sqrt(r))},
    })
    if c.edit_centre:
        params["decoder"]["centre"] = jnp.zeros((d,))  # set from data by the trainer
    # Two RG-LRUs stacked on a leading axis: [0] runs forwards, [1] backwards.
    params["embedder"]["lru"] = jax.vmap(lambda k: rglru.init(k, d, lru))(
        jax.random.split(k_lru))
    return params


def resets_from_segments(segments: jax.Array) -> jax.Array:
    """``segments [..., T]`` int episode ids of packed rows -> ``resets [..., T]`` bool, True where
    an episode (or the trailing padding) starts."""
    first = jnp.ones(segments.shape[:-1] + (1,), bool)
    return jnp.concatenate([first, segments[..., 1:] != segments[..., :-1]], axis=-1)


def sequence_embedder(params: Params, e: jax.Array, resets: jax.Array, *,
                      per_episode: bool) -> jax.Array:
    """``e [T, d], resets [T] -> s [T, n_s]``: a forward and a backward RG-LRU, reset at episode
    bounds, so s_t sees the episode containing t and nothing of the other episodes in the row.

    ``per_episode`` (the paper's s(e_{1:T}), Eq. 13/15): one vector per episode, the forward state
    at the episode's last step and the backward state at its first, the same at each of its steps.
    Otherwise s_t is read at t itself, so its backward half summarises e_{t+1..}: the immediate
    future, which reveals the next actions and lets the encoder write each move into its code.
    """
    T = e.shape[0]
    ends = jnp.concatenate([resets[1:], jnp.ones((1,), bool)])
    p = params["embedder"]
    lru = rglru.RGLRUConfig(p["proj"]["w"].shape[1])
    # The backward pass is the forward recurrence on the mirrored row (segment ends become starts),
    # so both directions run as one batched scan: half the sequential steps and compile time.
    run = jax.vmap(lambda q, x, r: rglru.apply(q, x, lru, resets=r))
    fwd, bwd = run(p["lru"], jnp.stack([e, e[::-1]]), jnp.stack([resets, ends[::-1]]))
    bwd = bwd[::-1]
    if per_episode:
        steps = jnp.arange(T)
        first = jax.lax.cummax(jnp.where(resets, steps, 0))  # the episode's first step
        last = jax.lax.cummin(jnp.where(ends, steps, T - 1), reverse=True)  # and its last
        fwd, bwd = fwd[last], bwd[first]
    return _linear(p["proj"], jnp.concatenate([fwd, bwd], axis=-1))


def gru_step(params: Params, h: jax.Array, e_t: jax.Array) -> jax.Array:
    """Standard GRU cell (Cho et al. 2014): ``h [n_h], e_t [d] -> h [n_h]``."""
    xr, xz, xn = jnp.split(_linear(params["gru"]["wi"], e_t), 3, axis=-1)
    hr, hz, hn = jnp.split(_linear(params["gru"]["wh"], h), 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    u = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    return (1.0 - u) * n + u * h


def encoder(params: Params, e_t: jax.Array, h_prev: jax.Array, s_t: jax.Array
            ) -> tuple[jax.Array, jax.Array]:
    """``(e_t [d], h_{t-1} [n_h], s_t [n_s]) -> (μ [n_z], log σ² [n_z])``."""
    mu, log_var = jnp.split(_mlp(params["encoder"], jnp.concatenate([e_t, h_prev, s_t])), 2)
    return mu, log_var


def switching_logit(params: Params, e_t: jax.Array, h_prev: jax.Array, z_prev: jax.Array
                    ) -> jax.Array:
    """``(e_t [d], h_{t-1} [n_h], z_{t-1} [n_z]) -> []`` the switching unit's logit."""
    return _mlp(params["switch"], jnp.concatenate([e_t, h_prev, z_prev]))[0]


def switching_gate(params: Params, e_t: jax.Array, h_prev: jax.Array, z_prev: jax.Array,
                   temperature: float = 0.0) -> jax.Array:
    """``(e_t [d], h_{t-1} [n_h], z_{t-1} [n_z]) -> β_t []`` in [0, 1], without noise (``temperature``
    > 0: σ(logit / τ), the Gumbel-sigmoid unit's mean-free form). Causal: never reads s."""
    return gate_from_logit(switching_logit(params, e_t, h_prev, z_prev), temperature)


def gate_from_logit(logit: jax.Array, temperature: float) -> jax.Array:
    """β = σ(logit / τ) (τ = 0: σ(logit)); one definition for training (``unroll``, whose logit
    may carry the Gumbel-sigmoid noise) and for the internal env (``switching_gate``)."""
    return jax.nn.sigmoid(logit / temperature if temperature > 0 else logit)


def controller_decoder(params: Params, z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Hypernetwork ``z [n_z] -> (a [rank, d], b [d, rank])``, the factors of U = b a."""
    p = params["decoder"]
    hidden = jax.nn.gelu(_linear(p["hidden"], z))
    a = jnp.einsum("h,hrd->rd", hidden, p["a"]["w"]) + p["a"]["b"]
    b = jnp.einsum("h,hdr->dr", hidden, p["b"]["w"]) + p["b"]["b"]
    return a, b


def edit(params: Params, z: jax.Array, e: jax.Array) -> jax.Array:
    """``e + U(z) e`` for ``z [..., n_z]``, ``e [..., d]`` (any leading axes, e.g. ``[T]``), equal
    to ``apply_controller(e, *controller_decoder(params, z))`` without forming U's factors
    (with a centre ē, ``MetacontrollerConfig.edit_centre``: ``e + U(z)(e − ē)``): per
    step it keeps ``[decoder_hidden · rank]`` numbers instead of ``2 rank d`` (over a sequence of
    full-linear ant controllers the factors took 64 MiB per 500-step row and exhausted memory).
    The hypernetwork's factors are sums over its hidden units, so both contractions are one matmul
    over all steps (``intervention.mixed_down``, ``mixed_up``).
    """
    p = params["decoder"]
    hidden = jax.nn.gelu(_linear(p["hidden"], z))  # [..., H]
    # With a centre (``MetacontrollerConfig.edit_centre``) U reads e − ē; ē is data, not trained.
    read = e - jax.lax.stop_gradient(p["centre"]) if "centre" in p else e
    ae = intervention.mixed_down(hidden, p["a"]["w"], read) + read @ p["a"]["b"].T  # [..., rank]
    return e + intervention.mixed_up(hidden, p["b"]["w"], ae) + ae @ p["b"]["b"].T


def apply_controller(e: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """``e [d], a [rank, d], b [d, rank] -> e + b (a e)``: the full map (I + U) e with U = b a."""
    return intervention.low_rank_update(e, a, b)


def observe(e: jax.Array, config: MetacontrollerConfig) -> jax.Array:
    """The residual ``e [..., d]`` as the metacontroller's networks read it."""
    if not config.input_norm:
        return e
    return e * jax.lax.rsqrt(jnp.mean(e**2, axis=-1, keepdims=True) + 1e-6)


def kl_to_standard_normal(mu: jax.Array, log_var: jax.Array) -> jax.Array:
    """KL(N(μ, diag σ²) || N(0, I)) for ``mu, log_var [n_z] -> []``."""
    return 0.5 * jnp.sum(jnp.exp(log_var) + mu**2 - 1.0 - log_var, axis=-1)


def unroll(params: Params, e: jax.Array, resets: jax.Array, key: jax.Array,
           config: MetacontrollerConfig, *, deterministic: bool = False,
           hard_beta_threshold: float | None = None,
           noise_scale: float | jax.Array = 1.0,
           hardness: float | jax.Array = 1.0) -> MetacontrollerOutputs:
    """Runs the metacontroller over one (packed) row.

    Args:
      e: [T, d_model] residual stream at the controlled layer (of the frozen base).
      resets: [T] bool, True at each episode's first step. Step 0 always starts an episode.
      key: PRNG key for the reparameterised samples z̃_t = μ_t + σ_t ε_t.
      deterministic: use z̃_t = μ_t (evaluation); ``key`` is then unused.
      noise_scale: z̃_t = μ_t + noise_scale · σ_t ε_t (training's noise warm-up; 1: the paper's
        sample). The KL is of the encoder's N(μ_t, σ²_t) whatever the scale.
      hard_beta_threshold: if given, integrate with the hard gate internal RL acts under: switch
        (z_t = z̃_t) iff β_t >= threshold, else keep z_{t-1} exactly. ``beta`` still reports the
        soft gate. Without it, ``config.straight_through`` > 0 integrates the same way in the
        forward pass with the soft β's gradient.
      hardness: with ``config.straight_through``, the forward gate is β + hardness · (hard − β)
        (training's hardening schedule: 0 the soft gate, 1 the hard one; the gradient is the soft
        β's throughout).
    Returns:
      ``MetacontrollerOutputs`` with z [T, n_z], beta [T], mu, log_var [T, n_z], kl [T].
    """
    T = e.shape[0]
    chex.assert_shape(e, (T, config.d_model))
    chex.assert_shape(resets, (T,))
    chex.assert_type(resets, bool)
    resets = resets.at[0].set(True)
    e = observe(e, config)
    s = sequence_embedder(params, e, resets,
                          per_episode=config.sequence_embedding == "episode")
    n_z = config.latent_dim
    eps = jnp.zeros((T * n_z,)) if deterministic else jax.random.normal(key, (T * n_z,))
    eps = eps.reshape(T, n_z) * noise_scale  # drawn flat, as in ``_draw``
    tau = config.gate_temperature
    if tau > 0 and not deterministic:
        # Logistic noise = the difference of two Gumbels: a Gumbel-sigmoid (binary concrete) β.
        u = jax.random.uniform(jax.random.fold_in(key, 1), (T,), minval=1e-6, maxval=1 - 1e-6)
        gate_noise = jnp.log(u) - jnp.log1p(-u)
    else:
        gate_noise = jnp.zeros((T,))

    def body(carry, inputs):
        h_prev, z_prev = carry
        e_t, s_t, reset, eps_t, noise_t = inputs
        h_prev = jnp.where(reset, 0.0, h_prev)
        z_prev = jnp.where(reset, 0.0, z_prev)
        mu, log_var = encoder(params, e_t, h_prev, s_t)
        z_tilde = mu + jnp.exp(0.5 * log_var) * eps_t
        beta = gate_from_logit(switching_logit(params, e_t, h_prev, z_prev) + noise_t, tau)
        # The first code of an episode is always chosen: there is no previous one to keep.
        always = reset | (config.variant == "forced_switch")
        beta = jnp.where(always, 1.0, beta)
        if hard_beta_threshold is not None:
            gate = jnp.where(always | (beta >= hard_beta_threshold), 1.0, 0.0)
        elif config.straight_through > 0:
            hard = jnp.where(always | (beta >= config.straight_through), 1.0, 0.0)
            gate = beta + hardness * jax.lax.stop_gradient(hard - beta)
        else:
            gate = beta
        z = gate * z_tilde + (1.0 - gate) * z_prev
        h = gru_step(params, h_prev, e_t)
        return (h, z), (z, beta, mu, log_var)

    init_carry = (jnp.zeros((config.history_dim,)), jnp.zeros((n_z,)))
    _, (z, beta, mu, log_var) = jax.lax.scan(body, init_carry, (e, s, resets, eps, gate_noise))
    return MetacontrollerOutputs(z, beta, mu, log_var, kl_to_standard_normal(mu, log_var))


def controller(params: Params, outputs: MetacontrollerOutputs, config: MetacontrollerConfig
               ) -> Callable[[jax.Array], jax.Array]:
    """The edit ``e [T, d] -> [T, d]``, ê_t = e_t + U_t e_t with U_t decoded from z_t.

    For ``transformer.apply(..., controller=hook, layer=l)``, whose hook takes ``e [B, T, d]`` and
    ``t [T]``, vmap over the batch (``outputs`` batched, from a vmapped ``unroll``)::

        outs = jax.vmap(lambda e, r, k: unroll(mc, e, r, k, config))(e_l, resets, keys)
        hook = lambda e, t: jax.vmap(lambda o, x: controller(mc, o, config)(x))(outs, e)

    ``e_l`` (the unedited stream at layer l) is ``residuals[:, :, l]`` of a controller-free pass:
    blocks below l never see the edit, so it equals what the hook receives.
    """
    chex.assert_shape(outputs.z, (None, config.latent_dim))
    return lambda e: edit(params, outputs.z, e)
