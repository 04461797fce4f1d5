import dataclasses

import jax
import jax.numpy as jnp

from experiments import bench_model, configs
from hrl_internal.models import transformer


def _xla_over_hand(num_layers: int) -> float:
    """XLA's FLOP count of a forward pass (action logits) over a batch of rows against the hand
    count: the forward alone, as the training step's count is 3x the same products and compiles
    far slower; the values are random, as FLOPs do not depend on them."""
    # The cpu preset's widths: at the smoke preset's, elementwise work (norms, softmax) is a
    # third of XLA's count and blurs the comparison.
    config = configs.preset("cpu")
    env = config.gridworld.env_params("pretrain")
    model = dataclasses.replace(config.model.transformer(env), num_layers=num_layers)
    params = transformer.init(jax.random.PRNGKey(1), model)
    obs = jax.random.bernoulli(jax.random.PRNGKey(2), 0.1, (2, env.max_steps, model.obs_size))
    forward = jax.jit(lambda p, o: transformer.apply(p, o.astype(jnp.float32), model)[0][
        "action_logits"])
    xla = bench_model.compiled_flops(forward, params, obs)
    hand = 2 * env.max_steps * bench_model.transformer_flops_per_token(model, env.max_steps)
    return xla / hand


def test_hand_count_matches_xla_where_xla_sees_every_block_and_exceeds_it_where_not():
    # One block: the scan over blocks runs once, so XLA's count is complete; it also counts
    # elementwise work, which the hand count leaves out.
    assert 1.0 <= _xla_over_hand(1) <= 1.15
    # Two blocks: XLA counts the scan body once and misses about half the blocks' work.
    assert _xla_over_hand(2) < 0.6


def test_hand_count_adds_what_each_part_costs():
    config = configs.preset("smoke")
    model = config.model.transformer(config.gridworld.env_params("pretrain"))
    base = bench_model.transformer_flops_per_token(model, 10)
    longer = bench_model.transformer_flops_per_token(model, 20)
    # Ten more keys per query: scores and weighted sums, in every block.
    assert longer - base == model.num_layers * 2 * 2 * 10 * model.num_heads * model.head_dim
    with_obs = bench_model.transformer_flops_per_token(model, 10, obs_head=True)
    assert with_obs - base == 2 * model.d_model * model.obs_size
    assert bench_model.train_flops_per_token(model, 10) == 3 * base
