import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import code_warm_start
from hrl_internal.models import metacontroller
from hrl_internal.training import metacontroller as meta_training

META = dict(latent_dim=4, history_dim=8, embed_dim=8, encoder_hidden=16, decoder_hidden=8,
            switch_hidden=16, rank=4)


class _Rows(NamedTuple):
    segments: jax.Array
    subgoals: jax.Array


def test_segment_starts_mark_episode_starts_and_subgoal_changes():
    rows = _Rows(jnp.asarray([[0, 0, 0, 1, 1, 1]]), jnp.asarray([[0, 0, 1, 1, 1, 2]]))
    np.testing.assert_array_equal(code_warm_start.segment_starts(rows),
                                  [[True, False, True, True, False, True]])


def test_anchors_pull_codes_and_gate_to_the_subgoals_and_vanish_at_weight_zero(tiny):
    meta = metacontroller.MetacontrollerConfig(d_model=tiny["model"].d_model, **META)
    hyper = meta_training.MetaHyper(batch_size=8, learning_rate=3e-3, alpha=0.1)
    state = meta_training.init_state(jax.random.PRNGKey(0), meta, tiny["model"], hyper)
    codes = code_warm_start.subgoal_codes(meta.latent_dim, 1.5)
    common = dict(model=tiny["model"], meta=meta, env=tiny["env"], layer=1)
    key = jax.random.PRNGKey(3)
    loss = functools.partial(code_warm_start.anchored_loss, base=tiny["params"],
                             rows=tiny["test_rows"], key=key, alpha=0.1, codes=codes, **common)

    # Weight 0 is the phase's own objective, to the bit.
    free, _ = loss(state.params, anchor=jnp.zeros(2))
    phase, _ = meta_training.loss_fn(state.params, tiny["params"], tiny["test_rows"], key,
                                     alpha=0.1, **common)
    assert float(free) == float(phase)
    # Free bits: below the floor the rate is charged at the floor, whatever the codes carry.
    floored, metrics = loss(state.params, anchor=jnp.zeros(2), kl_floor=100.0)
    assert float(metrics["kl"]) < 100.0
    np.testing.assert_allclose(float(floored), float(metrics["action_nll"]) + 0.1 * 100.0,
                               rtol=1e-6)

    both = jnp.ones(2)
    _, before = loss(state.params, anchor=both)
    trained, metrics = meta_training.train_steps(
        state, tiny["params"], tiny["rows"], jax.random.PRNGKey(1),
        {"codes": codes, "anchor": both, "kl_floor": 0.0}, hyper=hyper, num_steps=60,
        loss=code_warm_start.anchored_loss, **common)
    _, after = loss(trained.params, anchor=both)
    assert np.isfinite(float(metrics["loss"]))
    # Held-out: μ at the segment starts moves towards the codes (from |c|² = 2.25 at μ ≈ 0;
    # 1.69 is their mean, where a tiny base gets in 60 steps), β towards the starts.
    assert float(before["anchor_mu"]) > 2.0
    assert float(after["anchor_mu"]) < 0.8 * float(before["anchor_mu"])
    assert float(after["anchor_beta"]) < float(before["anchor_beta"]) - 0.1


class _Labelled(NamedTuple):
    segments: jax.Array
    subgoals: jax.Array
    mask: jax.Array


def test_subgoal_code_rate_is_the_subgoal_entropy_per_segment_start():
    # Two episodes of 4 steps, 4 segments with subgoals 0, 1, 2, 3: ln 4 nats at 4 of 8 steps;
    # padding (masked) steps count for nothing.
    rows = _Labelled(jnp.asarray([[0, 0, 0, 0, 1, 1, 1, 1, 2, 2]]),
                     jnp.asarray([[0, 0, 1, 1, 2, 2, 3, 3, 0, 0]]),
                     jnp.asarray([[True] * 8 + [False] * 2]))
    np.testing.assert_allclose(code_warm_start.subgoal_code_rate(rows), 0.5 * np.log(4),
                               rtol=1e-6)
    one = rows._replace(subgoals=jnp.zeros_like(rows.subgoals))
    assert code_warm_start.subgoal_code_rate(one) == 0.0


def test_scale_edit_scales_every_edit_and_nothing_else():
    config = metacontroller.MetacontrollerConfig(d_model=16, **META)
    params = {"meta": metacontroller.init(jax.random.PRNGKey(0), config)}
    scaled = code_warm_start.scale_edit(params, 10.0)
    z = jax.random.normal(jax.random.PRNGKey(1), (4,))
    e = jax.random.normal(jax.random.PRNGKey(2), (16,))
    np.testing.assert_allclose(metacontroller.edit(scaled["meta"], z, e) - e,
                               10.0 * (metacontroller.edit(params["meta"], z, e) - e), rtol=1e-4,
                               atol=1e-6)
    for name in ("encoder", "switch", "gru", "embedder"):
        for a, b in zip(jax.tree.leaves(params["meta"][name]),
                        jax.tree.leaves(scaled["meta"][name])):
            np.testing.assert_array_equal(a, b)


def test_with_decoder_swaps_the_decoder_only():
    config = metacontroller.MetacontrollerConfig(d_model=16, **META)
    fresh = meta_training.MetaState({"meta": metacontroller.init(jax.random.PRNGKey(0), config)},
                                    None, jax.numpy.zeros((), jax.numpy.int32))
    other = metacontroller.init(jax.random.PRNGKey(5), config)
    swapped = code_warm_start.with_decoder(fresh, other["decoder"])
    for a, b in zip(jax.tree.leaves(swapped.params["meta"]["decoder"]),
                    jax.tree.leaves(other["decoder"])):
        np.testing.assert_array_equal(a, b)
    for name in ("encoder", "switch", "gru", "embedder"):
        for a, b in zip(jax.tree.leaves(fresh.params["meta"][name]),
                        jax.tree.leaves(swapped.params["meta"][name])):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(fresh.params["meta"]["decoder"]["a"]["w"], other["decoder"]["a"]["w"])
    with pytest.raises(AssertionError):  # another shape of decoder is refused
        code_warm_start.with_decoder(fresh, {**other["decoder"], "hidden": {"w": np.zeros((2, 2)),
                                                                            "b": np.zeros(2)}})
