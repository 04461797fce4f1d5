"""The gridworld base model (§C.1, Table A16): a pre-norm causal transformer over observations.

Pure functions over a params pytree. Blocks are stacked along a leading ``[num_layers]`` axis and
run with ``lax.scan``, so depth costs no compile time. The residual stream is readable at every
layer (``apply`` returns it) and writable between blocks ``layer`` and ``layer + 1`` through the
``controller`` hook; ``lower``/``upper`` split the stack at ``layer`` for acting one step at a
time with KV caches.

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
import numpy as np

Params = dict[str, Any]
# controller(e [..., time, d_model], t [time] int32) -> [..., time, d_model]
Controller = Callable[[jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    obs_size: int
    num_actions: int
    d_model: int = 256
    num_layers: int = 6
    num_heads: int = 4
    head_dim: int = 64
    mlp_dim: int = 512
    num_buckets: int = 32  # relative-position buckets (T5 style, causal)
    max_distance: int = 128  # distances beyond this share the last bucket
    init_scale: float = 0.1  # variance scale of the truncated-normal initialiser
    max_len: int = 100  # KV-cache length for step-by-step acting
    # > 0: observations are per-cell one-hots on a grid of this side, the agent in the last
    # channel, and the input layer first re-centres them on the agent (``egocentric``).
    egocentric_grid: int = 0

    @property
    def input_size(self) -> int:
        """Width of what the embedding matrix reads (the re-centred grid when egocentric)."""
        if not self.egocentric_grid:
            return self.obs_size
        g = self.egocentric_grid
        return (2 * g - 1) ** 2 * (self.obs_size // (g * g))

    def validate_layer(self, layer: int) -> None:
        if not 0 <= layer <= self.num_layers:
            raise ValueError(f"layer must be in [0, {self.num_layers}], got {layer}")


def _dense(key: jax.Array, shape: tuple[int, ...], fan_in: int, scale: float) -> jax.Array:
    std = math.sqrt(scale / fan_in) / 0.87962566103423978  # truncated-normal std correction
    return std * jax.random.truncated_normal(key, -2.0, 2.0, shape, jnp.float32)


def init(key: jax.Array, config: TransformerConfig) -> Params:
    """Initial parameters. Block parameters carry a leading ``[num_layers]`` axis."""
    c = config
    keys = jax.random.split(key, 4)
    s = c.init_scale

    def block(k):
        ks = jax.random.split(k, 6)
        return {
            "ln1": {"scale": jnp.ones((c.d_model,)), "bias": jnp.zeros((c.d_model,))},
            "wq": _dense(ks[0], (c.d_model, c.num_heads, c.head_dim), c.d_model, s),
            "wk": _dense(ks[1], (c.d_model, c.num_heads, c.head_dim), c.d_model, s),
            "wv": _dense(ks[2], (c.d_model, c.num_heads, c.head_dim), c.d_model, s),
            "wo": _dense(ks[3], (c.num_heads, c.head_dim, c.d_model), c.num_heads * c.head_dim, s),
            "rel_bias": jnp.zeros((c.num_buckets, c.num_heads)),
            "ln2": {"scale": jnp.ones((c.d_model,)), "bias": jnp.zeros((c.d_model,))},
            "w1": _dense(ks[4], (c.d_model, c.mlp_dim), c.d_model, s),
            "b1": jnp.zeros((c.mlp_dim,)),
            "w2": _dense(ks[5], (c.mlp_dim, c.d_model), c.mlp_dim, s),
            "b2": jnp.zeros((c.d_model,)),
        }

    return {
        "embed": {"w": _dense(keys[0], (c.input_size, c.d_model), c.input_size, s),
                  "b": jnp.zeros((c.d_model,))},
        "blocks": jax.vmap(block)(jax.random.split(keys[1], c.num_layers)),
        "ln_f": {"scale": jnp.ones((c.d_model,)), "bias": jnp.zeros((c.d_model,))},
        "action_head": {"w": _dense(keys[2], (c.d_model, c.num_actions), c.d_model, s),
                        "b": jnp.zeros((c.num_actions,))},
        "obs_head": {"w": _dense(keys[3], (c.d_model, c.obs_size), c.d_model, s),
                     "b": jnp.zeros((c.obs_size,))},
    }


def _layer_norm(x: jax.Array, p: Params) -> jax.Array:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.var(x, axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + 1e-6) * p["scale"] + p["bias"]


def relative_bucket(distance: jax.Array, num_buckets: int, max_distance: int) -> jax.Array:
    """Causal T5 buckets: exact for distances < num_buckets/2, log-spaced up to max_distance."""
    exact = num_buckets // 2
    distance = jnp.maximum(distance, 0)
    log_ratio = jnp.log(jnp.maximum(distance, 1) / exact) / math.log(max_distance / exact)
    far = exact + (log_ratio * (num_buckets - exact)).astype(jnp.int32)
    return jnp.where(distance < exact, distance, jnp.minimum(far, num_buckets - 1))


def _attention(p: Params, h: jax.Array, keys: jax.Array, values: jax.Array, q_pos: jax.Array,
               k_pos: jax.Array, config: TransformerConfig, same_segment: jax.Array | None = None
               ) -> jax.Array:
    """Multi-head attention of queries ``h [Tq, d]`` over ``keys/values [Tk, H, Dh]``, causal.

    ``same_segment [Tq, Tk]`` (packed rows) further restricts attention to the query's episode.
    """
    q = jnp.einsum("td,dhk->thk", h, p["wq"]) / math.sqrt(config.head_dim)
    logits = jnp.einsum("qhk,shk->hqs", q, keys)
    distance = q_pos[:, None] - k_pos[None, :]
    bias = p["rel_bias"][relative_bucket(distance, config.num_buckets, config.max_distance)]
    logits = logits + jnp.transpose(bias, (2, 0, 1))
    visible = distance >= 0
    if same_segment is not None:
        visible = visible & same_segment
    logits = jnp.where(visible[None], logits, -1e30)
    weights = jax.nn.softmax(logits, axis=-1)
    out = jnp.einsum("hqs,shk->qhk", weights, values)
    return jnp.einsum("qhk,hkd->qd", out, p["wo"])


def _mlp(p: Params, x: jax.Array) -> jax.Array:
    h = _layer_norm(x, p["ln2"])
    return x + jax.nn.relu(h @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def _block(p: Params, x: jax.Array, config: TransformerConfig,
           same_segment: jax.Array | None) -> jax.Array:
    """One pre-norm block over a whole sequence ``x [T, d]``."""
    h = _layer_norm(x, p["ln1"])
    pos = jnp.arange(x.shape[0])
    keys = jnp.einsum("td,dhk->thk", h, p["wk"])
    values = jnp.einsum("td,dhk->thk", h, p["wv"])
    x = x + _attention(p, h, keys, values, pos, pos, config, same_segment)
    return _mlp(p, x)


def _slice_blocks(blocks: Params, start: int, stop: int) -> Params:
    return jax.tree.map(lambda a: a[start:stop], blocks)


def egocentric(obs: jax.Array, grid: int) -> jax.Array:
    """Re-centres per-cell one-hot grids on the agent: ``[..., G*G*C] -> [..., (2G-1)^2 * C]``.

    A fixed map with no parameters. The agent channel (last) becomes an off-grid channel, so the
    border stays visible. Directions to objects become positions in the window: a linear read-out,
    where the absolute grid would need the model to learn the agent-object relation first.
    """
    channels = obs.shape[-1] // (grid * grid)
    cells = obs.reshape((-1, grid, grid, channels))
    window = 2 * grid - 1

    def one(g):
        agent = jnp.argmax(g[..., -1].reshape(-1))
        objects = jnp.pad(g[..., :-1], ((grid - 1,) * 2, (grid - 1,) * 2, (0, 0)))
        off_grid = jnp.pad(jnp.zeros((grid, grid, 1), g.dtype), ((grid - 1,) * 2, (grid - 1,) * 2,
                                                                   (0, 0)), constant_values=1)
        padded = jnp.concatenate([objects, off_grid], axis=-1)
        return jax.lax.dynamic_slice(padded, (agent // grid, agent % grid, 0),
                                     (window, window, channels))

    return jax.vmap(one)(cells).reshape(obs.shape[:-1] + (window * window * channels,))


def _off_grid_windows(grid: int) -> np.ndarray:
    """``[G*G, (2G-1)^2]``: which cells of the agent-centred window lie off the grid, per agent
    cell (the off-grid channel of ``egocentric``)."""
    window = 2 * grid - 1
    rows = np.arange(window)[None, :] + np.arange(grid)[:, None] - (grid - 1)  # [G, window]
    inside = (rows >= 0) & (rows < grid)
    on = inside[:, None, :, None] & inside[None, :, None, :]  # [G, G, window, window]
    return (~on).reshape(grid * grid, window * window).astype(np.float32)


def egocentric_embed(w: jax.Array, obs: jax.Array, grid: int) -> jax.Array:
    """``egocentric(obs, grid) @ w`` without forming the window: ``[..., G*G*C] -> [..., d]``.

    Each channel of a gridworld observation is one-hot over cells (one wall, object or the agent
    per channel), so the window holds one entry per object channel plus an off-grid pattern that
    depends on the agent's cell alone. The product is then a gather of ``C - 1`` rows of ``w`` and
    one row of a ``[G*G, d]`` off-grid table: the same linear map and parameters, at about a
    tenth of the cost of the dense ``[(2G-1)^2 * C, d]`` product (the largest matmul of the small
    models). Exact for observations whose channels hold at most one non-zero cell.
    """
    channels = obs.shape[-1] // (grid * grid)
    window = 2 * grid - 1
    cells = obs.reshape(obs.shape[:-1] + (grid * grid, channels))
    where = jnp.argmax(cells, axis=-2)  # [..., C] the cell of each channel
    value = jnp.max(cells, axis=-2)[..., :-1]  # [..., C-1] 0 for an empty channel
    agent = where[..., -1]
    rel_row = where[..., :-1] // grid - (agent // grid)[..., None] + grid - 1
    rel_col = where[..., :-1] % grid - (agent % grid)[..., None] + grid - 1
    index = (rel_row * window + rel_col) * channels + jnp.arange(channels - 1)
    objects = jnp.einsum("...k,...kd->...d", value, w[index])
    off_grid = jnp.asarray(_off_grid_windows(grid)) @ w[channels - 1::channels]  # [G*G, d]
    return objects + off_grid[agent]


def embed(params: Params, obs: jax.Array, config: TransformerConfig) -> jax.Array:
    """``[..., obs_size] -> [..., d_model]``: the residual stream at layer 0."""
    if config.egocentric_grid:
        return (egocentric_embed(params["embed"]["w"], obs, config.egocentric_grid)
                + params["embed"]["b"])
    return obs @ params["embed"]["w"] + params["embed"]["b"]


def heads(params: Params, e: jax.Array) -> dict[str, jax.Array]:
    """Final norm and output heads: ``action_logits [..., A]``, ``obs_logits [..., obs_size]``."""
    h = _layer_norm(e, params["ln_f"])
    return {"action_logits": h @ params["action_head"]["w"] + params["action_head"]["b"],
            "obs_logits": h @ params["obs_head"]["w"] + params["obs_head"]["b"]}


def run_blocks(params: Params, e: jax.Array, start: int, stop: int, config: TransformerConfig,
               segments: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Blocks ``start+1 .. stop`` over ``e [T, d]``; returns ``(e, residuals [stop-start, T, d])``.

    ``segments [T]`` marks packed episodes: tokens attend only within their own segment.
    """
    same = None if segments is None else segments[:, None] == segments[None, :]

    def body(x, p):
        x = _block(p, x, config, same)
        return x, x
    return jax.lax.scan(body, e, _slice_blocks(params["blocks"], start, stop))


def apply(params: Params, obs: jax.Array, config: TransformerConfig, *,
          controller: Controller | None = None, layer: int | None = None,
          segments: jax.Array | None = None) -> tuple[dict[str, jax.Array], jax.Array]:
    """Full-sequence forward pass.

    Args:
      obs: [batch, time, obs_size] observations o_0..o_{T-1}.
      segments: optional [batch, time] int, episode ids of packed rows (``data.packing``).
      controller: optional ``(e [batch, time, d], t [time]) -> e'`` applied at ``layer``.
    Returns:
      ``outputs`` with ``action_logits [batch, time, A]`` (a_t given o_0..o_t) and ``obs_logits
      [batch, time, obs_size]`` (o_{t+1}); ``residuals [batch, time, num_layers + 1, d_model]``.
    """
    chex.assert_rank(obs, 3)
    chex.assert_axis_dimension(obs, 2, config.obs_size)
    L = config.num_layers
    if controller is None:
        layer = L
    elif layer is None:
        raise ValueError("a controller needs the layer it acts at")
    config.validate_layer(layer)
    run = jax.vmap(run_blocks, in_axes=(None, 0, None, None, None, None if segments is None else 0))
    e0 = embed(params, obs, config)
    e_l, lower_res = run(params, e0, 0, layer, config, segments)
    if controller is not None:
        e_l = controller(e_l, jnp.arange(obs.shape[1]))
        chex.assert_equal_shape([e_l, e0])
    e_top, upper_res = run(params, e_l, layer, L, config, segments)
    residuals = jnp.concatenate(
        [e0[:, :, None], jnp.swapaxes(lower_res, 1, 2), jnp.swapaxes(upper_res, 1, 2)], axis=2)
    return heads(params, e_top), residuals


class KVCache(NamedTuple):
    """Keys and values of a contiguous run of blocks for a batch of sequences advancing in
    lockstep, and the next position (shared, so each write is one in-place dynamic slice).

    One array per block, not one stacked array: reading a block's slice of a stacked cache copied
    it every step (measured: 2.2x the time of per-block arrays). The length is the longest episode
    the cache serves (at most ``max_len``): attention reads every slot, so a shorter cache is
    proportionally cheaper.
    """

    # Heads before time: attention is then a batched mat-vec over (batch, head) with no transpose.
    keys: tuple[jax.Array, ...]  # per block [batch, num_heads, length, head_dim]
    values: tuple[jax.Array, ...]  # per block [batch, num_heads, length, head_dim]
    position: jax.Array  # [] int32
    # [batch] int32: the first position each sequence attends to (``backbone.forget_before``:
    # the positions before it are forgotten); None: every written position.
    first: jax.Array | None = None


def init_cache(config: TransformerConfig, num_blocks: int, batch: int,
               length: int | None = None) -> KVCache:
    """An empty cache of ``length`` positions (default ``max_len``)."""
    length = config.max_len if length is None else length
    if not 0 < length <= config.max_len:
        raise ValueError(f"cache length must be in [1, max_len={config.max_len}], got {length}")
    shape = (batch, config.num_heads, length, config.head_dim)
    zeros = tuple(jnp.zeros(shape) for _ in range(num_blocks))
    return KVCache(zeros, tuple(jnp.zeros(shape) for _ in range(num_blocks)),
                   jnp.zeros((), jnp.int32))


def init_caches(config: TransformerConfig, layer: int, batch: int, length: int | None = None
                ) -> tuple[KVCache, KVCache]:
    """Empty ``(lower, upper)`` caches for acting with the stack split at ``layer``, for sequences
    of at most ``length`` steps (default ``max_len``)."""
    config.validate_layer(layer)
    return (init_cache(config, layer, batch, length),
            init_cache(config, config.num_layers - layer, batch, length))


def _cached_blocks(params: Params, cache: KVCache, x: jax.Array, start: int, stop: int,
                   config: TransformerConfig) -> tuple[jax.Array, KVCache]:
    """Blocks ``start+1 .. stop`` on one new token per sequence ``x [B, d]``, attending to the
    cached prefix."""
    chex.assert_equal(len(cache.keys), stop - start)
    pos = cache.position
    keys, values = list(cache.keys), list(cache.values)
    length = keys[0].shape[2] if keys else config.max_len
    distance = pos - jnp.arange(length)  # [length]
    bucket = relative_bucket(distance, config.num_buckets, config.max_distance)
    visible = distance >= 0  # [length]
    if cache.first is not None:
        visible = visible & (jnp.arange(length) >= cache.first[:, None])[:, None]  # [B, 1, S]
    # A Python loop over (few) blocks, not a scan: a scan would slice and restack the whole
    # cache every step, while indexed in-place writes keep the per-step traffic to one token.
    for i in range(stop - start):
        p = jax.tree.map(lambda a: a[start + i], params["blocks"])
        h = _layer_norm(x, p["ln1"])  # [B, d]
        write = lambda cache, new: jax.lax.dynamic_update_slice(cache, new[:, :, None],
                                                                (0, 0, pos, 0))
        keys[i] = write(keys[i], jnp.einsum("bd,dhk->bhk", h, p["wk"]))
        values[i] = write(values[i], jnp.einsum("bd,dhk->bhk", h, p["wv"]))
        q = jnp.einsum("bd,dhk->bhk", h, p["wq"]) / math.sqrt(config.head_dim)
        logits = jnp.einsum("bhk,bhsk->bhs", q, keys[i]) + p["rel_bias"][bucket].T
        # Unwritten cache slots lie in the future (distance < 0): the causal mask hides them.
        weights = jax.nn.softmax(jnp.where(visible, logits, -1e30), axis=-1)
        out = jnp.einsum("bhs,bhsk->bhk", weights, values[i])
        x = _mlp(p, x + jnp.einsum("bhk,hkd->bd", out, p["wo"]))
    return x, KVCache(tuple(keys), tuple(values), pos + 1, cache.first)


def lower(params: Params, cache: KVCache, obs_t: jax.Array, config: TransformerConfig,
          layer: int) -> tuple[jax.Array, KVCache]:
    """Embeds one observation per sequence ``[B, obs_size]`` and runs blocks ``1..layer``:
    ``(e_t [B, d], cache)``. O(max_len) work per step, no recomputation of the prefix."""
    chex.assert_shape(obs_t, (None, config.obs_size))
    return _cached_blocks(params, cache, embed(params, obs_t, config), 0, layer, config)


def upper(params: Params, cache: KVCache, e_t: jax.Array, config: TransformerConfig,
          layer: int) -> tuple[dict[str, jax.Array], KVCache]:
    """Runs blocks ``layer+1..num_layers`` on ``e_t [B, d]`` and the heads: ``(outputs, cache)``."""
    chex.assert_shape(e_t, (None, config.d_model))
    x, cache = _cached_blocks(params, cache, e_t, layer, config.num_layers, config)
    return heads(params, x), cache
