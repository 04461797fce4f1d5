"""Benchmark rows for the base model: this machine's float32 matmul ceiling, pretraining
tokens/s with its FLOPs and MFU, acting alone with KV caches (whole episodes), and the cost of
one cached step early and late in an episode. ``experiments.bench`` runs them.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from experiments import configs
from experiments.timing import measure, measure_together, row
from hrl_internal.analysis import rollout
from hrl_internal.data import dataset, packing
from hrl_internal.models import backbone, transformer
from hrl_internal.models.backbone import ModelConfig
from hrl_internal.training import pretrain


def compiled_flops(jitted: Any, *args: Any, **kwargs: Any) -> float:
    """FLOPs of one call of ``jitted(*args, **kwargs)``, from XLA's cost analysis of the compiled
    program (a dict, or in some jax versions a list of one dict per program).

    XLA counts a loop body once whatever its trip count: call this on a program without loops
    over the work being counted.
    """
    analysis = jitted.lower(*args, **kwargs).compile().cost_analysis()
    if isinstance(analysis, dict):
        analysis = [analysis]
    return float(sum(a.get("flops", 0.0) for a in analysis))


def transformer_flops_per_token(model: transformer.TransformerConfig, seq_len: int,
                                obs_head: bool = False) -> float:
    """Forward FLOPs per token of the transformer on rows of ``seq_len`` slots, counted by hand
    (2 per multiply-add of every matrix product; norms, softmax and other elementwise work left
    out): the embedding (a gather-and-sum of ``C - 1`` rows for the egocentric input, a dense
    product otherwise), per block the q/k/v/o projections, attention over all ``seq_len`` keys
    (scores and the weighted sum: the causal mask is applied, not skipped) and the MLP, then the
    action head (and the observation head when its loss weight is not 0; with 0 jit drops it).

    XLA's cost analysis cannot give this: it counts a ``lax.scan`` body once whatever its trip
    count, and the blocks run as a scan (``transformer.run_blocks``).
    """
    c = model
    inner = c.num_heads * c.head_dim
    if c.egocentric_grid:
        channels = c.obs_size // (c.egocentric_grid ** 2)
        embed = 2 * (channels - 1) * c.d_model
    else:
        embed = 2 * c.obs_size * c.d_model
    block = (2 * 4 * c.d_model * inner  # q, k, v and the output projection
             + 2 * 2 * seq_len * inner  # scores q.k and the weighted sum of values
             + 2 * 2 * c.d_model * c.mlp_dim)  # the MLP's two layers
    heads = 2 * c.d_model * (c.num_actions + (c.obs_size if obs_head else 0))
    return float(embed + c.num_layers * block + heads)


def train_flops_per_token(model: transformer.TransformerConfig, seq_len: int,
                          obs_head: bool = False) -> float:
    """A training step's FLOPs per token: the forward pass and a backward pass of twice its
    matrix FLOPs (gradients with respect to activations and to weights)."""
    return 3.0 * transformer_flops_per_token(model, seq_len, obs_head)


def matmul_ceiling_rows(sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    """FLOP/s of one float32 ``[n, n] @ [n, n]`` product per call, at each size: what this
    device's matrix units deliver to XLA, the ceiling an MFU on a CPU is measured against (no
    datasheet peak applies to a shared virtual CPU)."""
    out = []
    for n in sizes:
        a = jax.random.normal(jax.random.PRNGKey(n), (n, n), jnp.float32)
        b = jax.random.normal(jax.random.PRNGKey(n + 1), (n, n), jnp.float32)
        matmul = jax.jit(jnp.matmul)
        timing = measure(lambda: matmul(a, b), repeats=repeats)
        out.append(row("matmul_ceiling", n, 2 * n ** 3, "FLOP/s", timing,
                       gflops=2 * n ** 3 / timing.seconds / 1e9))
    return out


def packed_rows(env: Any, episodes: int, seed: int = 0) -> packing.PackedRows:
    """Expert episodes packed into rows of ``env.max_steps`` slots, on the device."""
    keys = jax.random.split(jax.random.PRNGKey(seed), episodes)
    episodes = dataset.to_numpy(dataset.generate(keys, env))
    return jax.tree.map(jnp.asarray, packing.pack(episodes, env))


def pretrain_rows(config: configs.Config, batch: int, steps: int, repeats: int,
                  peak_flops: float | None, peak_note: str, episodes: int = 2048
                  ) -> list[dict[str, Any]]:
    """Pretraining at ``config``'s model sizes: ``steps`` AdamW steps of ``batch`` packed rows per
    timed call. Tokens are packed slots (batch x max_steps), padding included.

    FLOPs per step are counted by hand (``train_flops_per_token``); XLA's count of the
    compiled one-step program is kept beside it (``xla_flops_per_step``: it sees the scanned
    blocks once). MFU = achieved FLOP/s / peak.
    """
    env = config.gridworld.env_params("pretrain")
    model = config.model.transformer(env)
    hyper = dataclasses.replace(config.pretrain.hyper(), batch_size=batch)
    rows = packed_rows(env, episodes)
    state = pretrain.init_state(jax.random.PRNGKey(1), model, hyper)
    key = jax.random.PRNGKey(2)
    static = dict(model=model, env=env, hyper=hyper)
    timing = measure(lambda: pretrain.train_steps(state, rows, key, **static, num_steps=steps)[1],
                     repeats=repeats)
    xla_flops = compiled_flops(pretrain.train_steps, state, rows, key, **static, num_steps=1)
    flops = batch * env.max_steps * train_flops_per_token(model, env.max_steps,
                                                          obs_head=hyper.obs_loss_weight > 0)
    achieved = flops * steps / timing.seconds
    mfu = None if peak_flops is None else achieved / peak_flops
    slots = batch * env.max_steps * steps
    fill = float(jnp.mean(rows.mask))
    return [row("pretrain", batch, slots, "tokens/s", timing, steps=steps,
                seconds_per_step=timing.seconds / steps,
                real_steps_per_s=slots * fill / timing.seconds,
                flops_per_step=flops, xla_flops_per_step=xla_flops,
                achieved_tflops=achieved / 1e12,
                peak_tflops=None if peak_flops is None else peak_flops / 1e12, mfu=mfu,
                model=dataclasses.asdict(model),
                note=(f"tokens = packed slots (batch x {env.max_steps}); {fill:.0%} of slots are "
                      f"real steps. FLOPs per step: counted by hand over every slot "
                      f"(train_flops_per_token: 3 x the forward's matrix products); XLA's cost "
                      f"analysis counts the scanned blocks once (xla_flops_per_step). "
                      f"Peak: {peak_note}"
                      + ("" if mfu is not None else "; MFU not computed")))]


def cached_rollout_rows(config: configs.Config, batches: list[int], repeats: int
                        ) -> list[dict[str, Any]]:
    """Whole episodes of a freshly initialised base model acting alone (``rollout.rollout``: KV
    caches, one ``lax.scan`` of max_steps batched model and env steps)."""
    env = config.gridworld.env_params("pretrain")
    model = config.model.transformer(env)
    params = transformer.init(jax.random.PRNGKey(1), model)
    key, out = jax.random.PRNGKey(2), []
    for n in batches:
        timing = measure(lambda: rollout.rollout(key, params, model, env, n).length,
                         repeats=repeats)
        out.append(row("cached_rollout", n, n * env.max_steps, "env steps/s", timing,
                       steps=env.max_steps, model=dataclasses.asdict(model)))
    return out


def _at_position(cache: Any, position: jax.Array) -> Any:
    """A KV cache whose next write is at ``position`` (a recurrent state has no position)."""
    if isinstance(cache, transformer.KVCache):
        return cache._replace(position=position)
    return cache


def cached_step_rows(params: Any, model: ModelConfig, layer: int, batch: int, steps: int,
                     repeats: int) -> list[dict[str, Any]]:
    """Seconds per cached base-model step at ``batch`` sequences: ``lower`` (embedding, blocks
    1..layer), ``upper`` (the rest) and the heads on one new observation per sequence, as the
    internal environment runs them. Timed over ``steps`` steps from position 0 (early) and from
    max_len - steps (late), in turn: one program, the start position is an argument.
    """
    net = backbone.module(model)

    @jax.jit
    def run(params, position, obs):
        lower, upper = jax.tree.map(lambda c: _at_position(c, position),
                                    backbone.init_caches(model, layer, batch),
                                    is_leaf=lambda c: isinstance(c, transformer.KVCache))

        def body(caches, obs_t):
            lower, upper = caches
            e, lower = net.lower(params, lower, obs_t, model, layer)
            outputs, upper = net.upper(params, upper, e, model, layer)
            return (lower, upper), jax.tree.map(jnp.sum, outputs)
        return jax.lax.scan(body, (lower, upper), obs)[1]

    # A fresh observation per step, so no part of the step is loop-invariant.
    obs = jax.random.bernoulli(jax.random.PRNGKey(3), 0.1, (steps, batch, model.obs_size)
                               ).astype(jnp.float32)
    starts = {"early": 0, "late": getattr(model, "max_len", steps * 2) - steps}
    positions = [jnp.int32(start) for start in starts.values()]
    timings = measure_together([lambda p=p: run(params, p, obs) for p in positions], repeats)
    return [row("cached_step", batch, batch * steps, "model steps/s", timing, position=name,
                positions=[start, start + steps - 1], steps=steps,
                seconds_per_batched_step=timing.seconds / steps, layer=layer,
                model=dataclasses.asdict(model))
            for (name, start), timing in zip(starts.items(), timings)]
