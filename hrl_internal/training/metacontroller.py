"""Phase 2 training (§D.2, Eq. 9): the metacontroller on a frozen base model.

Per packed row: the base model's lower blocks give the residual stream ``e_{t,l}``; the
metacontroller emits codes z_t (switching gate β_t), the decoder turns each into U_t, the edited
stream ``e + U e`` runs through the upper blocks, and the loss is the action NLL plus α times the
per-step KL of the encoder's posterior to N(0, I) (λ = 0). Variants share this code path:
``standard``, ``forced_switch`` (β ≡ 1), ``cotrain`` (base and metacontroller trained jointly,
the base from scratch) and ``compile`` (the CompILE baseline, ``models.compile``: segments and
codes inferred from the raw observations by a trainable copy of the base's lower half, decoded
by the same controller decoder; its KL is that of the codes plus that of the boundaries).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from hrl_internal.data import packing
from hrl_internal.models import backbone, compile as compile_model, metacontroller
from hrl_internal.models.backbone import ModelConfig
from hrl_internal.models.metacontroller import MetacontrollerConfig
from hrl_internal.training import guards
from hrl_internal.utils import sharding
from hrl_internal.data.packing import sample_batch
from hrl_internal.training.losses import QUALITY_METRICS, action_terms, masked_mean
from hrl_internal.training.optim import clipped_adamw

Rows = packing.PackedRows | packing.DenseRows

VARIANTS = ("standard", "forced_switch", "cotrain", "compile")


@dataclasses.dataclass(frozen=True)
class MetaHyper:
    batch_size: int = 24
    learning_rate: float = 1e-3
    weight_decay: float = 0.03
    alpha: float = 0.1  # KL weight α
    # α ramps linearly from 0 over this many steps: with the full α from the start the codes
    # collapse to the prior before they carry any information (KL -> 0, β -> 0).
    alpha_warmup: int = 0
    # The codes' sampling noise ramps linearly from 0 over this many steps (z̃ = μ + s σ ε, s from
    # 0 to 1; the KL is charged in full throughout). Not the paper's: on the toy base the
    # objective with sampled codes is flat between the initialisation and codes that name
    # subgoals, and descends with z̃ = μ (``experiments.objective_path``).
    noise_warmup: int = 0
    # With a straight-through gate (``MetacontrollerConfig.straight_through``): its forward pass
    # is soft until step ``hard_gate_start``, then hardens linearly over ``hard_gate_steps`` (0:
    # at once). Not the paper's: the soft gate is what lets the codes and β learn at all, the
    # hard one what internal RL acts under.
    hard_gate_start: int = 0
    hard_gate_steps: int = 0
    # Not the paper's: each row's codes, read from its episodes, are scored acting on the same
    # episodes in a world turned by a random number of right angles (gridworld), so a code that
    # names a direction or a place of its layout points the wrong way, and one that names a
    # colour still holds. Held-out scoring acts on the episodes as read.
    rotate: bool = False
    grad_clip: float = 1.0
    variant: str = "standard"
    skip_nonfinite: bool = False  # skip updates whose gradient is NaN/Inf (else the loop stops)
    # compile: the boundaries' KL weight α_β (-1: α, one weight for both, as the default)
    boundary_alpha: float = -1.0
    # Not the paper's: the base forgets the episode's history at each labelled subgoal change,
    # in the blocks below the layer ("lower"), above it ("upper") or all ("both"), as internal
    # RL's ``InternalEnvSpec.forget`` does at each switch (``forward_rows``' ``forget``).
    forget: str = "none"

    def __post_init__(self):
        backbone.check_forget(self.forget)


class MetaState(NamedTuple):
    """``params = {"meta": ...}``, plus ``"base"`` when the base model trains too (cotrain)."""

    params: Any
    opt_state: Any
    step: jax.Array  # [] int32


class Forward(NamedTuple):
    outputs: dict[str, jax.Array]  # the base model's heads, each [B, T, ...]
    codes: metacontroller.MetacontrollerOutputs  # each [B, T, ...]


def _decayed(params: Any) -> Any:
    """Weight decay's mask: every leaf but the edit's centre, which is data, not a weight."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: not any(getattr(k, "key", None) == "centre" for k in path), params)


ROTATE_TAG = 5  # folded into a step's noise key for the turns of ``MetaHyper.rotate``


def optimizer(hyper: MetaHyper, meta: MetacontrollerConfig | None = None
              ) -> optax.GradientTransformation:
    """AdamW; with the edit's centre (``meta.edit_centre``) weight decay spares it. The mask is
    only there with a centre: it changes the optimiser state's structure, which every other
    run's checkpoints keep."""
    mask = _decayed if meta is not None and meta.edit_centre else None
    return clipped_adamw(hyper.learning_rate, hyper.weight_decay, hyper.grad_clip,
                         hyper.skip_nonfinite, decay_mask=mask)


@functools.partial(jax.jit, static_argnames=("model", "env", "layer", "forget"))
def acted_stream(base: Any, rows: Rows, *, model: ModelConfig, env: Any, layer: int,
                 forget: str = "none") -> jax.Array:
    """``[B, T, d_model]``: the stream the edit acts on at ``layer`` (computed within subgoal
    segments where ``forget`` makes the lower blocks forget), as ``forward`` computes it."""
    obs, _ = packing.observations(rows, env)
    forgets_lower, _ = backbone.forgetting(forget)
    segments = packing.subgoal_segments(rows) if forgets_lower else rows.segments
    embedded = backbone.module(model).embed(base, obs, model)
    return backbone.run_blocks(base, embedded, 0, layer, model, segments)


def edit_centre(base: Any, rows: Rows, *, model: ModelConfig, env: Any, layer: int,
                forget: str = "none") -> jax.Array:
    """ē ``[d_model]``: the mean over ``rows``' real steps of ``acted_stream``."""
    e = acted_stream(base, rows, model=model, env=env, layer=layer, forget=forget)
    mask = rows.mask.astype(jnp.float32)[..., None]
    return jnp.sum(e * mask, axis=(0, 1)) / jnp.maximum(jnp.sum(mask), 1.0)


def with_edit_centre(state: MetaState, centre: jax.Array) -> MetaState:
    """``state`` with its edit's centre set (the metacontroller built with ``edit_centre``)."""
    params = jax.tree.map(lambda x: x, state.params)
    chex.assert_shape(centre, params["meta"]["decoder"]["centre"].shape)
    params["meta"]["decoder"]["centre"] = centre
    return state._replace(params=params)


def module_config(meta: MetacontrollerConfig, hyper: MetaHyper) -> MetacontrollerConfig:
    """The model-level variant: co-training changes what trains, not the metacontroller."""
    variant = hyper.variant if hyper.variant in metacontroller.VARIANTS else "standard"
    meta = dataclasses.replace(meta, variant=variant)
    # The ratio shapes training only; a module built for acting (α 0) keeps the default.
    if variant == "compile" and hyper.boundary_alpha >= 0 and hyper.alpha > 0:
        meta = dataclasses.replace(meta, boundary_kl_scale=hyper.boundary_alpha / hyper.alpha)
    return meta


def init_state(key: jax.Array, meta: MetacontrollerConfig, model: ModelConfig,
               hyper: MetaHyper, base: Any = None, layer: int | None = None) -> MetaState:
    """A fresh state. ``compile`` copies its encoder from the pretrained ``base`` (blocks
    1..``layer``); without ``base``, from a random one (a template of the right shapes)."""
    meta_key, base_key = jax.random.split(key)
    if hyper.variant == "compile":
        if layer is None:
            raise ValueError("the compile variant needs the controlled layer")
        base = backbone.module(model).init(base_key, model) if base is None else base
        params = {"meta": compile_model.init(meta_key, module_config(meta, hyper), base, layer)}
    else:
        params = {"meta": metacontroller.init(meta_key, module_config(meta, hyper))}
    if hyper.variant == "cotrain":
        params["base"] = backbone.module(model).init(base_key, model)
    return MetaState(params, optimizer(hyper, meta).init(params), jnp.zeros((), jnp.int32))


def forward(meta_params: Any, base: Any, obs: jax.Array, segments: jax.Array, key: jax.Array,
            *, model: ModelConfig, meta: MetacontrollerConfig, layer: int,
            deterministic: bool = False, hard_beta_threshold: float | None = None,
            noise_scale: float | jax.Array = 1.0, forget: str = "none",
            scoped: jax.Array | None = None, hardness: float | jax.Array = 1.0,
            acted_obs: jax.Array | None = None) -> Forward:
    """The base model steered by the metacontroller at ``layer``.

    Args:
      obs: [B, T, obs_size]; segments: [B, T] int episode ids of packed rows.
      forget: which blocks (``backbone.FORGET``) attend only within ``scoped`` [B, T] (subgoal
        segment ids, ``packing.subgoal_segments``) when the edit acts. The metacontroller reads
        the stream computed within ``segments``: as in the internal environment, the unit that
        decides a switch reads the history the edit acts without.
      acted_obs: [B, T, obs_size], if given, the episodes the edit acts on and the base model
        predicts (``MetaHyper.rotate``: the same episodes in a turned world), while the
        metacontroller reads ``obs``'s stream; None: ``obs``.
    Returns:
      the base model's heads and the codes (z, β, μ, log σ², KL), each ``[B, T, ...]``.
    """
    embedded = backbone.module(model).embed(base, obs, model)
    e_l = backbone.run_blocks(base, embedded, 0, layer, model, segments)
    forgets_lower, forgets_upper = backbone.forgetting(forget)
    if acted_obs is not None:
        acted = backbone.module(model).embed(base, acted_obs, model)
        e_acted = backbone.run_blocks(base, acted, 0, layer, model,
                                      scoped if forgets_lower else segments)
    elif forgets_lower and layer > 0:
        e_acted = backbone.run_blocks(base, embedded, 0, layer, model, scoped)
    else:  # below layer 0 there are no blocks: the stream is the same either way
        e_acted = e_l
    resets = metacontroller.resets_from_segments(segments)
    keys = jax.random.split(key, obs.shape[0])
    if meta.variant == "compile":
        h = compile_model.encode(meta_params, obs, segments, model, layer)
        codes = jax.vmap(functools.partial(compile_model.unroll, config=meta,
                                           deterministic=deterministic, noise_scale=noise_scale),
                         in_axes=(None, 0, 0, 0))(meta_params, h, segments, keys)
    else:
        codes = jax.vmap(functools.partial(metacontroller.unroll, config=meta,
                                           deterministic=deterministic,
                                           hard_beta_threshold=hard_beta_threshold,
                                           noise_scale=noise_scale, hardness=hardness),
                         in_axes=(None, 0, 0, 0))(meta_params, e_l, resets, keys)
    edited = jax.vmap(lambda c, e: metacontroller.controller(meta_params, c, meta)(e))(codes,
                                                                                      e_acted)
    e_top = backbone.run_blocks(base, edited, layer, model.num_layers, model,
                                scoped if forgets_upper else segments)
    return Forward(backbone.heads(base, e_top, model), codes)


def metrics_of(out: Forward, rows: Rows, alpha: float) -> dict[str, jax.Array]:
    """Eq. 9 with λ = 0 as means over real steps (``loss`` = NLL + α KL), and diagnostics:
    action accuracy (gridworld) or mean squared error of the mean action (ant)."""
    nll, quality = action_terms(out.outputs, rows.actions)
    mask = rows.mask.astype(jnp.float32)
    nll, kl = masked_mean(nll, mask), masked_mean(out.codes.kl, mask)
    metrics = {"loss": nll + alpha * kl, "action_nll": nll, "kl": kl}
    metrics.update({QUALITY_METRICS[k]: masked_mean(v, mask) for k, v in quality.items()})
    metrics["beta_mean"] = masked_mean(out.codes.beta, mask)
    return metrics



def forward_rows(params: Any, base: Any, rows: Rows, key: jax.Array, *,
                 model: ModelConfig, meta: MetacontrollerConfig, env: Any,
                 layer: int, deterministic: bool = False,
                 hard_beta_threshold: float | None = None,
                 noise_scale: float | jax.Array = 1.0, forget: str = "none",
                 hardness: float | jax.Array = 1.0, acted_rows: Rows | None = None) -> Forward:
    """``forward`` on packed rows; ``params["base"]`` (cotrain) replaces the frozen ``base``;
    ``forget``: the base forgets the history at each labelled subgoal change (``MetaHyper``);
    ``acted_rows``: the rows the edit acts on (``forward``'s ``acted_obs``), the same slots."""
    obs, _ = packing.observations(rows, env)
    acted_obs = None if acted_rows is None else packing.observations(acted_rows, env)[0]
    scoped = None if forget == "none" else packing.subgoal_segments(rows)
    return forward(params["meta"], params.get("base", base), obs, rows.segments, key,
                   model=model, meta=meta, layer=layer, deterministic=deterministic,
                   hard_beta_threshold=hard_beta_threshold, noise_scale=noise_scale,
                   forget=forget, scoped=scoped, hardness=hardness, acted_obs=acted_obs)


def loss_fn(params: Any, base: Any, rows: Rows, key: jax.Array, *,
            model: ModelConfig, meta: MetacontrollerConfig, env: Any, layer: int,
            alpha: float, noise_scale: float | jax.Array = 1.0, forget: str = "none",
            hardness: float | jax.Array = 1.0, rotate: bool = False
            ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``(NLL + α KL, metrics)``; the codes sampled with ``noise_scale`` · σ, a straight-through
    gate at ``hardness``; ``rotate``: each row's codes read from its episodes and scored acting
    on them in a world turned by a random number of right angles (``MetaHyper.rotate``)."""
    acted = None
    if rotate:
        turns = jax.random.randint(jax.random.fold_in(key, ROTATE_TAG), (rows.actions.shape[0],),
                                   0, 4)
        acted = packing.rotate(rows, turns, env.grid_size)
    out = forward_rows(params, base, rows, key, model=model, meta=meta, env=env, layer=layer,
                       noise_scale=noise_scale, forget=forget, hardness=hardness,
                       acted_rows=acted)
    metrics = metrics_of(out, rows if acted is None else acted, alpha)
    return metrics["loss"], metrics


def alpha_at(step: jax.Array, hyper: MetaHyper) -> jax.Array:
    """The KL weight at ``step``: linear warm-up from 0 to ``hyper.alpha``."""
    if hyper.alpha_warmup <= 0:
        return jnp.asarray(hyper.alpha, jnp.float32)
    return hyper.alpha * jnp.minimum(1.0, (step + 1) / hyper.alpha_warmup)


def noise_at(step: jax.Array, hyper: MetaHyper) -> jax.Array:
    """The codes' noise scale at ``step``: linear warm-up from 0 to 1 (1 without a warm-up)."""
    if hyper.noise_warmup <= 0:
        return jnp.asarray(1.0, jnp.float32)
    return jnp.minimum(1.0, step / hyper.noise_warmup).astype(jnp.float32)


def hardness_at(step: jax.Array, hyper: MetaHyper) -> jax.Array:
    """A straight-through gate's forward hardness at ``step``: 0 before ``hard_gate_start``, then
    linear to 1 over ``hard_gate_steps``."""
    ramp = (step - hyper.hard_gate_start + 1) / max(hyper.hard_gate_steps, 1)
    return jnp.clip(ramp, 0.0, 1.0).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("model", "meta", "env", "layer", "hyper",
                                              "num_steps", "loss"))
def train_steps(state: MetaState, base: Any, data: Rows, key: jax.Array,
                loss_args: dict[str, Any] | None = None, *, model: ModelConfig,
                meta: MetacontrollerConfig, env: Any, layer: int, hyper: MetaHyper,
                num_steps: int, loss: Callable[..., tuple[jax.Array, dict[str, jax.Array]]]
                = loss_fn) -> tuple[MetaState, dict[str, jax.Array]]:
    """``num_steps`` updates as one ``lax.scan``; step ``s`` uses ``fold_in(key, s)`` (resumable).

    ``base`` is a constant here: no gradient reaches it (it is not even differentiated).
    ``loss`` (default: the phase's ``loss_fn``) takes ``loss_fn``'s arguments (α and the noise
    scale of this step's warm-ups, and ``hyper.forget``, among them) plus the entries of
    ``loss_args`` (a pytree of arrays) as keywords and returns ``(loss, metrics)`` with the
    objective in ``metrics["loss"]``: an experiment adds terms to the objective without its own
    copy of the loop (the same batches, noise keys and optimiser).
    """
    opt = optimizer(hyper, meta)
    meta = module_config(meta, hyper)
    grad_fn = jax.value_and_grad(loss, has_aux=True)
    loss_args = loss_args or {}

    def update(state, _):
        batch_key, noise_key = jax.random.split(jax.random.fold_in(key, state.step))
        batch = sharding.shard_batch(sample_batch(data, batch_key, hyper.batch_size))
        (_, metrics), grads = grad_fn(state.params, base, batch, noise_key, model=model,
                                      meta=meta, env=env, layer=layer,
                                      alpha=alpha_at(state.step, hyper),
                                      noise_scale=noise_at(state.step, hyper),
                                      hardness=hardness_at(state.step, hyper),
                                      forget=hyper.forget, **({"rotate": True} if hyper.rotate
                                                              else {}), **loss_args)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        metrics["grad_norm"] = optax.tree.norm(grads)
        metrics["nonfinite"] = guards.step_flags(metrics["loss"], metrics["grad_norm"])
        return MetaState(optax.apply_updates(state.params, updates), opt_state,
                         state.step + 1), metrics

    first_step = state.step
    state, metrics = jax.lax.scan(update, state, None, length=num_steps)
    return state, guards.summarise(metrics, first_step)


@functools.partial(jax.jit, static_argnames=("model", "meta", "env", "layer", "hyper",
                                              "hard_beta_threshold"))
def evaluate(params: Any, base: Any, rows: Rows, *, model: ModelConfig,
             meta: MetacontrollerConfig, env: Any, layer: int, hyper: MetaHyper,
             hard_beta_threshold: float | None = None) -> tuple[dict[str, jax.Array], Forward]:
    """Held-out metrics with z̃ = μ (no sampling), and the codes for switching analysis; with
    ``hard_beta_threshold``, under the hard gate internal RL uses (``metacontroller.unroll``)."""
    out = forward_rows(params, base, sharding.shard_batch(rows), jax.random.PRNGKey(0), model=model,
                       meta=module_config(meta, hyper), env=env, layer=layer, deterministic=True,
                       hard_beta_threshold=hard_beta_threshold, forget=hyper.forget)
    metrics = metrics_of(out, rows, hyper.alpha)
    metrics["num_steps"] = jnp.sum(rows.mask)
    return metrics, out
