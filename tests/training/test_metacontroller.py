import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.data import packing
from hrl_internal.models import backbone, metacontroller
from hrl_internal.training import metacontroller as meta_training
from hrl_internal.training.checkpoint import Checkpointer
from hrl_internal.utils import sharding

META = dict(latent_dim=4, history_dim=8, embed_dim=8, encoder_hidden=16, decoder_hidden=8,
            switch_hidden=16, rank=4)


def _setup(tiny, variant="standard", alpha=0.1):
    meta = metacontroller.MetacontrollerConfig(d_model=tiny["model"].d_model, **META)
    hyper = meta_training.MetaHyper(batch_size=8, learning_rate=3e-3, alpha=alpha,
                                    variant=variant)
    state = meta_training.init_state(jax.random.PRNGKey(0), meta, tiny["model"], hyper)
    # Placed as the launcher places it: a restored state then reuses the same compiled program.
    return meta, hyper, sharding.place(state)


def _train(tiny, meta, hyper, state, steps):
    return meta_training.train_steps(state, tiny["params"], tiny["rows"], jax.random.PRNGKey(1),
                                     model=tiny["model"], meta=meta, env=tiny["env"], layer=1,
                                     hyper=hyper, num_steps=steps)


def _eval(tiny, meta, hyper, params):
    return meta_training.evaluate(params, tiny["params"], tiny["test_rows"], model=tiny["model"],
                                  meta=meta, env=tiny["env"], layer=1, hyper=hyper)


@pytest.fixture(scope="module")
def trained_75(tiny):
    """α = 0.1 after 75 steps from the initial state (shared: the training and α tests)."""
    meta, hyper, state = _setup(tiny)
    half, _ = _train(tiny, meta, hyper, state, 75)
    return half


def test_training_improves_heldout_nll_resumes_exactly_and_trains_the_metacontroller_only(
        tiny, trained_75, tmp_path):
    meta, hyper, state = _setup(tiny)
    before, _ = _eval(tiny, meta, hyper, state.params)
    # 2 x 75 steps straight, and 75 + a checkpoint round trip + 75: one compiled program.
    half = trained_75
    whole, metrics = _train(tiny, meta, hyper, half, 75)
    ckpt = Checkpointer(str(tmp_path / "ckpt"))
    ckpt.save(75, half)
    resumed, _ = _train(tiny, meta, hyper, ckpt.restore(state), 75)
    assert int(resumed.step) == 150
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    after, out = _eval(tiny, meta, hyper, whole.params)
    # The non-causal encoder sees where each episode goes: steering by it beats the base alone.
    assert float(after["action_nll"]) < float(before["action_nll"]) - 0.02
    # The trained state holds the metacontroller alone: the base is an input, never an output.
    assert set(whole.params) == {"meta"}
    assert np.isfinite(float(metrics["grad_norm"])) and float(metrics["grad_norm"]) > 0
    beta = np.asarray(out.codes.beta)
    assert beta.shape == tiny["test_rows"].actions.shape
    assert np.all((beta >= 0) & (beta <= 1))


def test_forced_switch_gate_is_always_one(tiny):
    meta, hyper, state = _setup(tiny, variant="forced_switch")
    _, out = _eval(tiny, meta, hyper, state.params)
    np.testing.assert_array_equal(np.asarray(out.codes.beta), 1.0)


def test_cotrain_trains_a_fresh_base_too(tiny):
    meta, hyper, state = _setup(tiny, variant="cotrain")
    assert set(state.params) == {"meta", "base"}
    trained, _ = _train(tiny, meta, hyper, state, 3)
    moved = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.params["base"]),
                                                      jax.tree.leaves(trained.params["base"]))]
    assert any(moved)


def test_compile_lowers_its_nll_and_trains_its_encoder_copy_not_the_base(tiny):
    """The CompILE baseline through the same training loop: its encoder starts as the pretrained
    lower blocks, its codes steer the frozen base, and training lowers the held-out NLL."""
    meta = metacontroller.MetacontrollerConfig(d_model=tiny["model"].d_model, **META)
    hyper = meta_training.MetaHyper(batch_size=8, learning_rate=3e-3, alpha=0.1,
                                    variant="compile")
    state = meta_training.init_state(jax.random.PRNGKey(0), meta, tiny["model"], hyper,
                                     base=tiny["params"], layer=1)
    encoder = state.params["meta"]["encoder"]
    np.testing.assert_array_equal(np.asarray(encoder["blocks"]["wq"]),
                                  np.asarray(tiny["params"]["blocks"]["wq"][:1]))
    before, _ = _eval(tiny, meta, hyper, state.params)
    trained, metrics = _train(tiny, meta, hyper, state, 60)
    after, out = _eval(tiny, meta, hyper, trained.params)
    assert float(after["action_nll"]) < float(before["action_nll"]) - 0.02, (before, after)
    assert np.isfinite(float(metrics["grad_norm"])) and float(metrics["grad_norm"]) > 0
    assert not np.array_equal(np.asarray(trained.params["meta"]["encoder"]["blocks"]["wq"]),
                              np.asarray(encoder["blocks"]["wq"]))
    assert set(trained.params) == {"meta"}
    beta = np.asarray(out.codes.beta)
    assert set(np.unique(beta)) <= {0.0, 1.0}  # arg-max boundaries in evaluation


def test_alpha_trades_kl_for_nll(tiny, trained_75):
    """A larger KL weight buys a smaller KL. α = 0.1 for 75 steps is the training test's run;
    α = 1.0 is the one more program."""
    kls, nlls = [], []
    for alpha in (0.1, 1.0):
        meta, hyper, state = _setup(tiny, alpha=alpha)
        state = trained_75 if alpha == 0.1 else _train(tiny, meta, hyper, state, 75)[0]
        metrics, _ = _eval(tiny, meta, hyper, state.params)
        kls.append(float(metrics["kl"]))
        nlls.append(float(metrics["action_nll"]))
    assert kls[1] < kls[0] and nlls[1] > nlls[0], (kls, nlls)


def test_noise_warmup_ramps_from_zero_and_a_custom_loss_sees_it_and_its_arguments(tiny):
    ramp = meta_training.MetaHyper(noise_warmup=4)
    scales = [float(meta_training.noise_at(jnp.asarray(s), ramp)) for s in (0, 2, 4, 9)]
    assert scales == [0.0, 0.5, 1.0, 1.0]
    assert float(meta_training.noise_at(jnp.asarray(0), meta_training.MetaHyper())) == 1.0
    # The straight-through gate's hardening: soft before the start, linear after, hard at once
    # by default.
    harden = meta_training.MetaHyper(hard_gate_start=3, hard_gate_steps=4)
    assert [float(meta_training.hardness_at(jnp.asarray(s), harden))
            for s in (0, 2, 3, 4, 6, 20)] == [0.0, 0.0, 0.25, 0.5, 1.0, 1.0]
    assert float(meta_training.hardness_at(jnp.asarray(0), meta_training.MetaHyper())) == 1.0

    def recording_loss(params, base, rows, key, *, extra, **kwargs):
        loss, metrics = meta_training.loss_fn(params, base, rows, key, **kwargs)
        return loss + 0.0 * extra, {**metrics, "noise_scale": kwargs["noise_scale"],
                                    "extra": extra}

    meta, hyper, state = _setup(tiny)
    hyper = dataclasses.replace(hyper, noise_warmup=4)
    _, metrics = meta_training.train_steps(
        state, tiny["params"], tiny["rows"], jax.random.PRNGKey(1), {"extra": jnp.asarray(2.0)},
        model=tiny["model"], meta=meta, env=tiny["env"], layer=1, hyper=hyper, num_steps=4,
        loss=recording_loss)
    # The scan's steps 0..3 sample with 0, 1/4, 1/2, 3/4 of σ: their mean is 3/8.
    np.testing.assert_allclose(float(metrics["noise_scale"]), 0.375, rtol=1e-6)
    assert float(metrics["extra"]) == 2.0


def test_compiles_separate_boundary_weight_becomes_the_models_kl_scale():
    meta = metacontroller.MetacontrollerConfig(d_model=8, latent_dim=2)
    hyper = meta_training.MetaHyper(alpha=0.3, variant="compile", boundary_alpha=0.03)
    assert meta_training.module_config(meta, hyper).boundary_kl_scale == pytest.approx(0.1)
    one_weight = dataclasses.replace(hyper, boundary_alpha=-1.0)
    assert meta_training.module_config(meta, one_weight).boundary_kl_scale == 1.0
    standard = dataclasses.replace(hyper, variant="standard")
    assert meta_training.module_config(meta, standard).boundary_kl_scale == 1.0
    # A module built for acting (α 0, no training) is the same model.
    acting = meta_training.module_config(meta, dataclasses.replace(hyper, alpha=0.0))
    assert acting.boundary_kl_scale == 1.0


def test_forgetting_base_sees_only_the_current_subgoal_and_the_metacontroller_all_history(tiny):
    """``MetaHyper.forget``: the edit acts on a base that forgets at each labelled subgoal change
    (with a zero edit: the base's own pass over subgoal segments), while the metacontroller's
    codes are those it infers reading the whole history."""
    from hrl_internal.data import packing
    from hrl_internal.models import transformer
    meta, hyper, state = _setup(tiny)
    params = jax.tree.map(lambda x: x, state.params)
    params["meta"]["decoder"]["b"] = jax.tree.map(jnp.zeros_like, params["meta"]["decoder"]["b"])
    rows = jax.tree.map(lambda a: a[:8], tiny["test_rows"])
    mask = np.asarray(rows.mask)

    def steered(forget):
        return meta_training.forward_rows(params, tiny["params"], rows, jax.random.PRNGKey(0),
                                          model=tiny["model"], meta=meta, env=tiny["env"],
                                          layer=1, deterministic=True, forget=forget)

    obs, _ = packing.observations(rows, tiny["env"])
    scoped, _ = transformer.apply(tiny["params"], obs, tiny["model"],
                                  segments=packing.subgoal_segments(rows))
    whole, _ = transformer.apply(tiny["params"], obs, tiny["model"], segments=rows.segments)
    outs = {f: steered(f) for f in ("none", "lower", "both")}
    logits = {f: np.asarray(o.outputs["action_logits"])[mask] for f, o in outs.items()}
    np.testing.assert_allclose(logits["both"], np.asarray(scoped["action_logits"])[mask],
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logits["none"], np.asarray(whole["action_logits"])[mask],
                               rtol=1e-4, atol=1e-4)
    # The history matters to this base, and forgetting below the layer alone is a third regime.
    assert np.abs(logits["both"] - logits["none"]).max() > 1e-2
    assert np.abs(logits["lower"] - logits["none"]).max() > 1e-3
    assert np.abs(logits["lower"] - logits["both"]).max() > 1e-3
    for f in ("lower", "both"):
        np.testing.assert_allclose(np.asarray(outs[f].codes.z), np.asarray(outs["none"].codes.z),
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="forget must be one of"):
        meta_training.MetaHyper(forget="all")


def test_edit_centre_is_the_acted_streams_mean_and_training_leaves_it_as_set(tiny):
    meta, hyper, state = _setup(tiny)
    meta = dataclasses.replace(meta, edit_centre=True)
    state = meta_training.init_state(jax.random.PRNGKey(0), meta, tiny["model"], hyper)
    rows = jax.tree.map(lambda x: x[:16], tiny["rows"])
    rows = rows._replace(mask=rows.mask.at[:, -30:].set(False))  # as padding
    centre = meta_training.edit_centre(tiny["params"], rows, model=tiny["model"],
                                       env=tiny["env"], layer=1)
    obs, _ = packing.observations(rows, tiny["env"])
    model = tiny["model"]
    e = backbone.run_blocks(tiny["params"], backbone.module(model).embed(tiny["params"], obs,
                                                                        model),
                            0, 1, model, rows.segments)
    mask = np.asarray(rows.mask, bool)
    np.testing.assert_allclose(centre, np.asarray(e)[mask].mean(0), rtol=1e-4, atol=1e-5)
    assert np.abs(np.asarray(centre)).max() > 1e-2
    state = meta_training.with_edit_centre(state, centre)
    trained, _ = _train(tiny, meta, hyper, state, 5)
    # No gradient and no weight decay: the centre is exactly as set, the decoder has moved.
    np.testing.assert_array_equal(trained.params["meta"]["decoder"]["centre"], centre)
    assert not np.allclose(trained.params["meta"]["decoder"]["a"]["w"],
                           state.params["meta"]["decoder"]["a"]["w"])


def test_turned_world_reads_the_episodes_as_given_and_acts_on_the_turned_ones(tiny):
    meta, hyper, state = _setup(tiny)
    rows = jax.tree.map(lambda x: x[:8], tiny["rows"])
    fwd = jax.jit(meta_training.forward_rows, static_argnames=(
        "model", "meta", "env", "layer", "deterministic"))
    args = dict(model=tiny["model"], meta=meta, env=tiny["env"], layer=1, deterministic=True)
    key = jax.random.PRNGKey(3)
    plain = fwd(state.params, tiny["params"], rows, key, **args)
    same = fwd(state.params, tiny["params"], rows, key, acted_rows=rows, **args)
    turned = packing.rotate(rows, jnp.ones(8, jnp.int32), tiny["env"].grid_size)
    acted = fwd(state.params, tiny["params"], rows, key, acted_rows=turned, **args)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(same)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # The codes are read from the episodes as given; the base acts in the turned world.
    np.testing.assert_array_equal(acted.codes.z, plain.codes.z)
    assert not np.allclose(jax.tree.leaves(acted.outputs)[0], jax.tree.leaves(plain.outputs)[0],
                           atol=1e-3)
    # The training loss with the turns: finite, and its gradient reaches the encoder.
    grads, metrics = jax.jit(jax.grad(meta_training.loss_fn, has_aux=True), static_argnames=(
        "model", "meta", "env", "layer", "rotate"))(
        state.params, tiny["params"], rows, key, model=tiny["model"], meta=meta,
        env=tiny["env"], layer=1, alpha=0.1, rotate=True)
    assert np.isfinite(float(metrics["loss"]))
    assert np.abs(np.asarray(grads["meta"]["encoder"]["out"]["w"])).max() > 0
