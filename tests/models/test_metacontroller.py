import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.models import metacontroller as mc

C = mc.MetacontrollerConfig(d_model=12, latent_dim=3, history_dim=5, embed_dim=4,
                            encoder_hidden=8, decoder_hidden=6, rank=2, switch_hidden=7)
PARAMS = jax.jit(mc.init, static_argnums=1)(jax.random.PRNGKey(0), C)
T, SPLIT = 11, 5  # a packed row: episode A = steps 0..4, episode B = steps 5..10
RNG = np.random.default_rng(0)  # test data from numpy: no PRNG kernels to compile
E = jnp.asarray(RNG.normal(size=(T, C.d_model)), jnp.float32)
RESETS = jnp.zeros(T, bool).at[SPLIT].set(True)
KEY = jax.random.PRNGKey(2)
# The same two episodes in the other order: each then also runs alone from the row's start.
SWAPPED = jnp.concatenate([E[SPLIT:], E[:SPLIT]])
SWAPPED_RESETS = jnp.zeros(T, bool).at[T - SPLIT].set(True)
unroll = jax.jit(mc.unroll, static_argnames=("config", "deterministic", "hard_beta_threshold"))
embed = jax.jit(mc.sequence_embedder, static_argnames="per_episode")
edit = jax.jit(lambda params, outputs, e: mc.controller(params, outputs, C)(e))
close = dict(rtol=1e-5, atol=1e-6)


def _with(params, path, fn):
    """A copy of ``params`` with the leaf at ``path`` (a tuple of keys) replaced by ``fn(leaf)``."""
    params = jax.tree.map(lambda x: x, params)
    node = params
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = fn(node[path[-1]])
    return params


def _causal_encoder(params):
    """Zeroes the encoder's weights on s, the only non-causal input of the model."""
    return _with(params, ("encoder", "hidden", "w"), lambda w: w.at[-C.embed_dim:].set(0.0))


@pytest.mark.parametrize("field", ["d_model", "latent_dim", "rank", "switch_hidden"])
def test_config_rejects_non_positive_sizes_naming_the_field(field):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(C, **{field: 0})


def test_config_rejects_unknown_variant():
    with pytest.raises(ValueError, match="variant"):
        dataclasses.replace(C, variant="gumbel")


def test_resets_from_segments():
    segments = jnp.asarray([[0, 0, 1, 1, 1, -1], [0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(mc.resets_from_segments(segments),
                                  [[1, 0, 1, 0, 0, 1], [1, 0, 0, 0, 0, 0]])


@pytest.mark.parametrize("per_episode", [True, False])
def test_embedder_packed_row_equals_separate_episodes(per_episode):
    s = embed(PARAMS, E, RESETS, per_episode=per_episode)
    assert s.shape == (T, C.embed_dim)
    swapped = embed(PARAMS, SWAPPED, SWAPPED_RESETS, per_episode=per_episode)
    np.testing.assert_allclose(s[:SPLIT], swapped[T - SPLIT:], **close)
    np.testing.assert_allclose(s[SPLIT:], swapped[:T - SPLIT], **close)


def test_embedder_sees_its_whole_episode_and_nothing_else():
    s = embed(PARAMS, E, RESETS, per_episode=True)
    later_in_a = embed(PARAMS, E.at[SPLIT - 1].add(1.0), RESETS, per_episode=True)
    assert not np.allclose(s[:SPLIT - 1], later_in_a[:SPLIT - 1], atol=1e-5)  # non-causal
    np.testing.assert_array_equal(s[SPLIT:], later_in_a[SPLIT:])
    earlier_in_b = embed(PARAMS, E.at[SPLIT].add(1.0), RESETS, per_episode=True)
    assert not np.allclose(s[SPLIT + 1:], earlier_in_b[SPLIT + 1:], atol=1e-5)  # causal half
    np.testing.assert_array_equal(s[:SPLIT], earlier_in_b[:SPLIT])


def test_embedder_gives_one_vector_per_episode_unless_read_per_step():
    s = embed(PARAMS, E, RESETS, per_episode=True)
    np.testing.assert_array_equal(s[:SPLIT], jnp.broadcast_to(s[0], (SPLIT, C.embed_dim)))
    np.testing.assert_array_equal(s[SPLIT:], jnp.broadcast_to(s[SPLIT], (T - SPLIT, C.embed_dim)))
    assert not np.allclose(s[0], s[SPLIT], atol=1e-5)
    per_step = embed(PARAMS, E, RESETS, per_episode=False)
    assert not np.allclose(per_step[0], per_step[1], atol=1e-5)


def test_config_rejects_an_unknown_sequence_embedding():
    with pytest.raises(ValueError, match="sequence_embedding"):
        dataclasses.replace(C, sequence_embedding="pooled")


def test_unroll_packed_row_equals_separate_episodes():
    out = unroll(PARAMS, E, RESETS, KEY, C, deterministic=True)
    swapped = unroll(PARAMS, SWAPPED, SWAPPED_RESETS, KEY, C, deterministic=True)
    for got, want in zip(out, swapped):
        np.testing.assert_allclose(got[:SPLIT], want[T - SPLIT:], **close)
        np.testing.assert_allclose(got[SPLIT:], want[:T - SPLIT], **close)
    run_on = unroll(PARAMS, E, jnp.zeros(T, bool), KEY, C, deterministic=True)
    assert not np.allclose(run_on.z[SPLIT:], out.z[SPLIT:], atol=1e-5)  # the reset mattered


@functools.partial(jax.jit, static_argnames="per_episode")
def _reference(params, e, per_episode):
    """The §D.2 equations step by step from the public components (deterministic z̃ = μ), for
    the episodes starting at 0 and SPLIT."""
    s = mc.sequence_embedder(params, e, RESETS, per_episode=per_episode)
    h, z = jnp.zeros(C.history_dim), jnp.zeros(C.latent_dim)
    zs, betas = [], []
    for t in range(T):
        if t in (0, SPLIT):
            h, z = jnp.zeros_like(h), jnp.zeros_like(z)
        mu, _ = mc.encoder(params, e[t], h, s[t])
        beta = 1.0 if t in (0, SPLIT) else mc.switching_gate(params, e[t], h, z)
        z = beta * mu + (1 - beta) * z
        h = mc.gru_step(params, h, e[t])
        zs.append(z)
        betas.append(beta)
    return jnp.stack(zs), jnp.stack(betas)


@pytest.mark.parametrize("sequence_embedding", mc.SEQUENCE_EMBEDDINGS)
def test_unroll_wires_the_components_as_in_the_paper(sequence_embedding):
    config = dataclasses.replace(C, sequence_embedding=sequence_embedding)
    out = unroll(PARAMS, E, RESETS, KEY, config, deterministic=True)
    z, beta = _reference(PARAMS, E, sequence_embedding == "episode")
    np.testing.assert_allclose(out.beta, beta, **close)
    np.testing.assert_allclose(out.z, z, **close)


def test_switching_gate_is_causal_and_does_not_read_s():
    out = unroll(PARAMS, E, RESETS, KEY, C)
    changed = unroll(PARAMS, E.at[8].add(1.0), RESETS, KEY, C)
    assert not np.allclose(out.mu[6:8], changed.mu[6:8], atol=1e-5)  # the encoder reads s
    # With the encoder's only path to s cut, nothing before step 8 may move.
    causal = _causal_encoder(PARAMS)
    out = unroll(causal, E, RESETS, KEY, C)
    changed = unroll(causal, E.at[8].add(1.0), RESETS, KEY, C)
    np.testing.assert_array_equal(out.beta[:8], changed.beta[:8])
    np.testing.assert_array_equal(out.z[:8], changed.z[:8])
    assert not np.allclose(out.beta[8], changed.beta[8], atol=1e-6)  # β_t reads e_t
    # Changing s (through the embedder's weights) leaves β untouched.
    other_s = _with(causal, ("embedder", "proj", "b"), lambda b: b + 3.0)
    np.testing.assert_array_equal(unroll(other_s, E, RESETS, KEY, C).beta, out.beta)


def test_beta_is_one_at_episode_starts_and_unsaturated_elsewhere_at_init():
    beta = unroll(PARAMS, E, RESETS, KEY, C).beta
    assert beta.shape == (T,)
    assert beta[0] == 1.0 and beta[SPLIT] == 1.0
    rest = np.delete(np.asarray(beta), [0, SPLIT])
    assert np.all((rest > 0.2) & (rest < 0.8)), rest


def test_forced_switch_variant_has_beta_one_and_z_equal_z_tilde():
    forced = dataclasses.replace(C, variant="forced_switch")
    out = unroll(PARAMS, E, RESETS, KEY, forced, deterministic=True)
    np.testing.assert_array_equal(out.beta, jnp.ones(T))
    np.testing.assert_allclose(out.z, out.mu, **close)


def test_noise_scale_scales_the_sample_about_mu_and_leaves_the_kl():
    forced = dataclasses.replace(C, variant="forced_switch")  # z = z̃ at every step
    full, half, none = (unroll(PARAMS, E, RESETS, KEY, forced, noise_scale=s)
                        for s in (1.0, 0.5, 0.0))
    np.testing.assert_array_equal(none.z, none.mu)
    np.testing.assert_allclose(half.z - half.mu, 0.5 * (full.z - full.mu), **close)
    assert float(jnp.abs(full.z - full.mu).max()) > 0.1
    np.testing.assert_array_equal(full.kl, none.kl)


def test_temporal_integration():
    out = unroll(PARAMS, E, RESETS, KEY, C, deterministic=True)
    for t in range(1, T):
        if t != SPLIT:
            want = out.beta[t] * out.mu[t] + (1 - out.beta[t]) * out.z[t - 1]
            np.testing.assert_allclose(out.z[t], want, **close)
    starts = jnp.asarray([0, SPLIT])
    np.testing.assert_allclose(out.z[starts], out.mu[starts], **close)
    # β = 0: each episode keeps its first code.
    never = _with(PARAMS, ("switch", "out", "b"), lambda b: b - 1e4)
    out = unroll(never, E, RESETS, KEY, C)
    np.testing.assert_array_equal(out.beta, jnp.zeros(T).at[0].set(1.0).at[SPLIT].set(1.0))
    np.testing.assert_array_equal(out.z[:SPLIT], jnp.broadcast_to(out.z[0], (SPLIT, C.latent_dim)))
    np.testing.assert_array_equal(out.z[SPLIT:],
                                  jnp.broadcast_to(out.z[SPLIT], (T - SPLIT, C.latent_dim)))
    assert not np.allclose(out.z[0], out.z[SPLIT])
    # β = 1: z = z̃ = μ + σ ε (reparameterised), and = μ when deterministic.
    always = _with(PARAMS, ("switch", "out", "b"), lambda b: b + 1e4)
    np.testing.assert_array_equal(unroll(always, E, RESETS, KEY, C).beta, jnp.ones(T))
    det = unroll(always, E, RESETS, KEY, C, deterministic=True)
    np.testing.assert_allclose(det.z, det.mu, **close)
    # Reparameterised: ε = (z - μ) / σ is the same noise whatever μ and σ are, and new per key.
    noise = lambda params, key: (lambda o: (o.z - o.mu) * jnp.exp(-0.5 * o.log_var))(
        unroll(params, E, RESETS, key, C))
    eps = noise(always, KEY)
    shifted = _with(always, ("encoder", "out", "b"), lambda b: b + 0.5)
    np.testing.assert_allclose(noise(shifted, KEY), eps, rtol=1e-4, atol=1e-5)
    assert 0.5 < np.std(eps) < 2.0
    assert not np.allclose(noise(always, jax.random.PRNGKey(7)), eps, atol=0.1)


def test_hard_gate_switches_iff_beta_crosses_the_threshold_and_holds_z_exactly():
    soft = unroll(PARAMS, E, RESETS, KEY, C, deterministic=True)
    beta = np.asarray(soft.beta)
    threshold = float(np.median(np.delete(beta, [0, SPLIT])))  # some steps switch, some do not
    hard = unroll(PARAMS, E, RESETS, KEY, C, deterministic=True, hard_beta_threshold=threshold)
    beta = np.asarray(hard.beta)  # β reads z_{t-1}, which the hard gate changes
    switched = 0
    for t in range(T):
        if t in (0, SPLIT) or beta[t] >= threshold:
            np.testing.assert_allclose(hard.z[t], hard.mu[t], **close)
            switched += t not in (0, SPLIT)
        else:
            np.testing.assert_array_equal(hard.z[t], hard.z[t - 1])
    assert 0 < switched < T - 2
    # A threshold above 1: one code per episode, taken at its first step.
    never = unroll(PARAMS, E, RESETS, KEY, C, deterministic=True, hard_beta_threshold=1.5)
    np.testing.assert_array_equal(never.z[:SPLIT], jnp.broadcast_to(never.z[0], (SPLIT, 3)))
    np.testing.assert_allclose(never.z[SPLIT], never.mu[SPLIT], **close)


def test_straight_through_gate_integrates_hard_forward_and_passes_the_soft_gradient():
    soft = unroll(PARAMS, E, RESETS, KEY, C, deterministic=True)
    threshold = float(np.median(np.delete(np.asarray(soft.beta), [0, SPLIT])))
    st = dataclasses.replace(C, straight_through=threshold)
    # Forward: the codes of the hard gate internal RL acts under, with or without sampling.
    for deterministic in (True, False):
        hard = unroll(PARAMS, E, RESETS, KEY, C, deterministic=deterministic,
                      hard_beta_threshold=threshold)
        np.testing.assert_array_equal(unroll(PARAMS, E, RESETS, KEY, st,
                                             deterministic=deterministic).z, hard.z)

    # Backward: the switching unit gets a gradient (a hard gate alone would give it none).
    def loss(params, config):
        return jnp.sum(unroll(params, E, RESETS, KEY, config).z ** 2)

    grads = jax.jit(jax.grad(loss), static_argnums=1)(PARAMS, st)
    g = np.asarray(grads["switch"]["out"]["w"])
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 1e-4
    hard_grad = jax.jit(jax.grad(lambda p: jnp.sum(unroll(
        p, E, RESETS, KEY, C, hard_beta_threshold=threshold).z ** 2)))(PARAMS)
    assert np.abs(np.asarray(hard_grad["switch"]["out"]["w"])).max() == 0.0
    with pytest.raises(ValueError, match="straight_through"):
        dataclasses.replace(C, straight_through=1.0)


def test_gumbel_sigmoid_gate_is_noisy_in_training_and_sharp_in_evaluation():
    gumbel = dataclasses.replace(C, gate_temperature=0.25)
    soft = unroll(PARAMS, E, RESETS, KEY, C, deterministic=True)
    mean_free = unroll(PARAMS, E, RESETS, KEY, gumbel, deterministic=True)
    b = float(soft.beta[1])  # step 1: both gates read the same z_0 = μ_0
    logit = np.log(b) - np.log1p(-b)
    np.testing.assert_allclose(mean_free.beta[1], 1 / (1 + np.exp(-logit / 0.25)), rtol=1e-4)
    # Training draws logistic noise: at init (logit ~ 0, β ~ 0.5 soft) the sampled β sits near 0
    # or 1 at temperature 0.25, and differs between keys; resets still force β = 1.
    betas = np.concatenate([np.delete(np.asarray(unroll(PARAMS, E, RESETS, jax.random.PRNGKey(k),
                                                        gumbel).beta), [0, SPLIT])
                            for k in range(20)])
    assert np.mean((betas < 0.1) | (betas > 0.9)) > 0.6
    assert 0.3 < np.mean(betas > 0.5) < 0.7
    assert unroll(PARAMS, E, RESETS, KEY, gumbel).beta[SPLIT] == 1.0
    # The soft gate's training draw is unchanged by the option (the codes' noise is the same).
    np.testing.assert_array_equal(unroll(PARAMS, E, RESETS, KEY, C).z,
                                  unroll(PARAMS, E, RESETS, KEY, dataclasses.replace(
                                      C, gate_temperature=0.0)).z)
    with pytest.raises(ValueError, match="gate_temperature"):
        dataclasses.replace(C, gate_temperature=-1.0)


def test_apply_controller_is_the_full_map_not_transposed_or_diagonal():
    a, b, e = (jnp.asarray(RNG.normal(size=shape), jnp.float32)
               for shape in [(C.rank, C.d_model), (C.d_model, C.rank), (C.d_model,)])
    u = b @ a
    assert not np.allclose(u, u.T, atol=1e-3)
    got = mc.apply_controller(e, a, b)
    np.testing.assert_allclose(got, e + u @ e, rtol=1e-5, atol=1e-5)
    assert not np.allclose(got, e + u.T @ e, atol=1e-3)
    assert not np.allclose(got, e + jnp.diag(u) * e, atol=1e-3)


def test_controller_applies_each_steps_decoded_map_and_starts_small():
    out = unroll(PARAMS, E, RESETS, KEY, C)
    edited = edit(PARAMS, out, E)
    assert edited.shape == (T, C.d_model)
    for t in (0, 7):
        a, b = mc.controller_decoder(PARAMS, out.z[t])
        assert a.shape == (C.rank, C.d_model) and b.shape == (C.d_model, C.rank)
        np.testing.assert_allclose(edited[t], E[t] + b @ a @ E[t], rtol=1e-5, atol=1e-6)
    ratio = jnp.linalg.norm(edited - E, axis=-1) / jnp.linalg.norm(E, axis=-1)
    assert np.all((ratio > 1e-4) & (ratio < 0.2)), ratio
    deterministic = unroll(PARAMS, E, RESETS, KEY, C, deterministic=True)  # z ≈ 0 at init
    assert np.all(edit(PARAMS, deterministic, E) != E)


def test_kl_to_standard_normal():
    assert mc.kl_to_standard_normal(jnp.zeros(3), jnp.zeros(3)) == 0.0
    mu, log_var = jnp.asarray([0.5, -1.0, 2.0]), jnp.asarray([0.3, -0.7, 1.1])
    sigma = np.exp(0.5 * np.asarray(log_var))
    want = np.sum(-np.log(sigma) + (sigma**2 + np.asarray(mu) ** 2) / 2 - 0.5)
    np.testing.assert_allclose(mc.kl_to_standard_normal(mu, log_var), want, rtol=1e-5)
    out = unroll(PARAMS, E, RESETS, KEY, C)
    np.testing.assert_allclose(out.kl, jax.vmap(mc.kl_to_standard_normal)(out.mu, out.log_var))


def test_batched_loss_jits_vmaps_and_reaches_every_parameter():
    es = jnp.stack([E, SWAPPED, -E])
    resets = jnp.stack([RESETS, SWAPPED_RESETS, jnp.zeros(T, bool)])
    keys = jax.random.split(KEY, 3)
    target = jnp.asarray(RNG.normal(size=es.shape), jnp.float32)

    @jax.jit
    @functools.partial(jax.value_and_grad, has_aux=True)
    def loss(params):
        outs = jax.vmap(lambda e, r, k: mc.unroll(params, e, r, k, C))(es, resets, keys)
        # The hook transformer.apply expects: (e [B, T, d], t [T]) -> [B, T, d].
        hook = lambda e, t: jax.vmap(lambda o, x: mc.controller(params, o, C)(x))(outs, e)
        edited = hook(es, jnp.arange(T))
        return jnp.sum((edited - target) ** 2) + 0.1 * jnp.sum(outs.kl), (outs, edited)

    (_, (outs, edited)), grads = loss(PARAMS)
    assert edited.shape == es.shape and outs.z.shape == (3, T, C.latent_dim)
    for i in range(3):
        one = unroll(PARAMS, es[i], resets[i], keys[i], C)
        for got, want in zip(outs, one):
            np.testing.assert_allclose(got[i], want, **close)
        np.testing.assert_allclose(edited[i], edit(PARAMS, one, es[i]), **close)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert np.all(np.isfinite(g)) and np.any(g != 0), jax.tree_util.keystr(path)


def test_input_norm_makes_the_codes_independent_of_the_stream_scale():
    config = mc.MetacontrollerConfig(d_model=8, latent_dim=3, history_dim=4, embed_dim=4,
                                     encoder_hidden=8, decoder_hidden=4,
                                     rank=8, switch_hidden=8, input_norm=True)
    params = mc.init(jax.random.PRNGKey(0), config)
    e = jax.random.normal(jax.random.PRNGKey(1), (6, 8))
    resets = jnp.zeros((6,), bool)
    small = mc.unroll(params, e, resets, jax.random.PRNGKey(2), config)
    large = mc.unroll(params, 40.0 * e, resets, jax.random.PRNGKey(2), config)
    np.testing.assert_allclose(small.mu, large.mu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(small.beta, large.beta, rtol=1e-4, atol=1e-5)
    plain = dataclasses.replace(config, input_norm=False)
    raw = mc.unroll(params, 40.0 * e, resets, jax.random.PRNGKey(2), plain)
    assert not np.allclose(raw.mu, large.mu, atol=1e-3), "without it the scale reaches the codes"


def test_edit_equals_the_decoded_controller_applied():
    config = mc.MetacontrollerConfig(d_model=8, latent_dim=3, history_dim=4, embed_dim=4,
                                     encoder_hidden=8, decoder_hidden=5, rank=8, switch_hidden=8)
    params = mc.init(jax.random.PRNGKey(0), config)
    z = jax.random.normal(jax.random.PRNGKey(1), (3,))
    e = jax.random.normal(jax.random.PRNGKey(2), (8,))
    a, b = mc.controller_decoder(params, z)
    np.testing.assert_allclose(mc.edit(params, z, e), mc.apply_controller(e, a, b),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(mc.edit(params, z, e), e), "a nonzero edit"


def test_centred_edit_reads_the_stream_minus_its_centre_and_averages_to_no_edit():
    config = mc.MetacontrollerConfig(d_model=8, latent_dim=3, history_dim=4, embed_dim=4,
                                     encoder_hidden=8, decoder_hidden=5, rank=8, switch_hidden=8,
                                     edit_centre=True)
    params = mc.init(jax.random.PRNGKey(0), config)
    np.testing.assert_array_equal(params["decoder"]["centre"], np.zeros(8))
    e = jax.random.normal(jax.random.PRNGKey(2), (50, 8)) + 3.0  # far from zero mean
    params["decoder"]["centre"] = e.mean(0)
    z = jax.random.normal(jax.random.PRNGKey(1), (3,))
    a, b = mc.controller_decoder(params, z)
    np.testing.assert_allclose(mc.edit(params, z, e[0]),
                               e[0] + b @ (a @ (e[0] - e.mean(0))), rtol=1e-5, atol=1e-5)
    # Over the data the centre came from, a code's edit averages to zero: no fixed vector.
    delta = jax.vmap(lambda x: mc.edit(params, z, x) - x)(e)
    assert np.abs(np.asarray(delta.mean(0))).max() < 1e-4 < np.abs(np.asarray(delta)).max()
    plain = {k: v for k, v in params["decoder"].items() if k != "centre"}
    shifted = jax.vmap(lambda x: mc.edit({**params, "decoder": plain}, z, x) - x)(e)
    assert np.abs(np.asarray(shifted.mean(0))).max() > 1e-2, "uncentred: a mean offset"
    # The centre is data: no gradient reaches it.
    g = jax.grad(lambda p: jnp.sum(mc.edit(p, z, e) ** 2))(params)
    assert np.abs(np.asarray(g["decoder"]["centre"])).max() == 0.0


def test_edit_over_leading_axes_applies_each_steps_own_map():
    """``edit`` on ``[B, T, ...]`` in one call equals per-step decoding, step by step: the
    batched contraction must not mix steps or rows."""
    config = mc.MetacontrollerConfig(d_model=8, latent_dim=3, history_dim=4, embed_dim=4,
                                     encoder_hidden=8, decoder_hidden=5, rank=2, switch_hidden=8)
    params = mc.init(jax.random.PRNGKey(0), config)
    z = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 3))
    e = jax.random.normal(jax.random.PRNGKey(2), (2, 4, 8))
    got = mc.edit(params, z, e)
    assert got.shape == (2, 4, 8)
    for i in range(2):
        for t in range(4):
            a, b = mc.controller_decoder(params, z[i, t])
            np.testing.assert_allclose(got[i, t], mc.apply_controller(e[i, t], a, b),
                                       rtol=1e-5, atol=1e-6)
