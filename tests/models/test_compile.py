import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.models import compile as cp
from hrl_internal.models import metacontroller as mc

C = mc.MetacontrollerConfig(d_model=12, latent_dim=3, encoder_hidden=8, decoder_hidden=6, rank=2,
                            variant="compile", max_segments=4, segment_rate=3)
BASE = {"embed": {"w": jnp.zeros((5, 12)), "b": jnp.zeros((12,))},
        "blocks": {"w": jnp.zeros((3, 12, 12))}}
PARAMS = cp.init(jax.random.PRNGKey(0), C, BASE, 2)
T, SPLIT = 13, 6  # a packed row: episode A = steps 0..5, episode B = steps 6..10, 2 of padding
RNG = np.random.default_rng(0)
H = jnp.asarray(RNG.normal(size=(T, C.d_model)), jnp.float32)
SEGMENTS = jnp.asarray([0] * SPLIT + [1] * 5 + [-1] * 2)
KEY = jax.random.PRNGKey(1)
unroll = jax.jit(cp.unroll, static_argnames=("config", "deterministic"))


def test_init_copies_the_lower_blocks_and_has_the_metacontrollers_decoder():
    assert PARAMS["encoder"]["blocks"]["w"].shape == (2, 12, 12)
    decoder = mc.init(jax.random.PRNGKey(0), C)["decoder"]
    assert jax.tree.map(jnp.shape, PARAMS["decoder"]) == jax.tree.map(jnp.shape, decoder)
    assert PARAMS["none"].shape == (C.max_segments - 1,)


@pytest.mark.parametrize("deterministic", [False, True])
def test_shapes_gate_and_kl_per_episode(deterministic):
    out = unroll(PARAMS, H, SEGMENTS, KEY, C, deterministic=deterministic)
    assert out.z.shape == (T, C.latent_dim) and out.beta.shape == (T,) and out.kl.shape == (T,)
    beta, kl = np.asarray(out.beta), np.asarray(out.kl)
    assert np.all(np.isfinite(np.asarray(out.z))) and np.all(kl > 0)
    assert beta[0] == 1.0 and beta[SPLIT] == 1.0 and np.all((beta >= 0) & (beta <= 1))
    # Each episode's KL is spread evenly over its steps.
    np.testing.assert_allclose(kl[:SPLIT], kl[0], rtol=1e-6)
    np.testing.assert_allclose(kl[SPLIT:11], kl[SPLIT], rtol=1e-6)
    if deterministic:
        # Arg-max boundaries: β is binary, at most M - 1 switches per episode, and the code is
        # constant between switches.
        assert set(np.unique(beta)) <= {0.0, 1.0}
        for lo, hi in ((0, SPLIT), (SPLIT, 11)):
            assert beta[lo + 1:hi].sum() <= C.max_segments - 1
            z = np.asarray(out.z)
            for t in range(lo + 1, hi):
                if beta[t] == 0:
                    np.testing.assert_allclose(z[t], z[t - 1], rtol=1e-6)


def test_episodes_in_a_row_are_segmented_as_if_alone():
    out = unroll(PARAMS, H, SEGMENTS, KEY, C, deterministic=True)
    swapped = jnp.concatenate([H[SPLIT:11], H[:SPLIT], H[11:]])
    seg = jnp.asarray([0] * 5 + [1] * SPLIT + [-1] * 2)
    other = unroll(PARAMS, swapped, seg, KEY, C, deterministic=True)
    for field in ("z", "beta", "kl"):
        a, b = np.asarray(getattr(out, field)), np.asarray(getattr(other, field))
        np.testing.assert_allclose(a[:SPLIT], b[5:11], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a[SPLIT:11], b[:5], rtol=1e-5, atol=1e-6)


def test_boundary_kl_against_the_poisson_prior():
    """One boundary (M = 2), a flat boundary head and codes at the prior: the KL per episode is
    that of q (uniform over positions 1..L-1, and "none" at logit ν) to Poisson(t; λ) with the
    rest of the prior's mass on "none"."""
    config = dataclasses.replace(C, max_segments=2)
    params = cp.init(jax.random.PRNGKey(0), config, BASE, 2)
    params = jax.tree.map(jnp.zeros_like, params)  # μ = 0, log σ² = 0, every logit 0
    params["none"] = jnp.asarray([0.7])
    L, lam = 9, config.segment_rate
    out = unroll(params, jnp.zeros((L, 12)), jnp.zeros((L,), jnp.int32), KEY, config,
                 deterministic=True)
    weights = np.array([1.0] * (L - 1) + [math.exp(0.7)])
    q = weights / weights.sum()
    prior = np.array([math.exp(t * math.log(lam) - lam - math.lgamma(t + 1)) for t in range(1, L)])
    p = np.append(prior, 1 - prior.sum())
    np.testing.assert_allclose(float(out.kl[0]) * L, np.sum(q * np.log(q / p)), rtol=1e-4)
    assert float(out.beta[1:].sum()) == pytest.approx(1.0 if q[:-1].max() > q[-1] else 0.0)


def test_log_poisson_is_normalised():
    k = jnp.arange(80, dtype=jnp.float32)
    assert float(jnp.exp(cp.log_poisson(k, 10.0)).sum()) == pytest.approx(1.0, abs=1e-5)


def test_gradients_reach_every_head_finite_and_nonzero():
    def loss(params):
        out = cp.unroll(params, H, SEGMENTS, KEY, C)
        target = jnp.arange(T * C.latent_dim, dtype=jnp.float32).reshape(T, C.latent_dim) / T
        return jnp.sum((out.z - target) ** 2) + jnp.sum(out.kl)

    grads = jax.jit(jax.grad(loss))(PARAMS)
    for name in ("boundary", "latent", "none"):
        leaves = [np.asarray(x) for x in jax.tree.leaves(grads[name])]
        assert all(np.all(np.isfinite(x)) for x in leaves)
        assert max(np.abs(x).max() for x in leaves) > 0, name


def test_boundary_kl_scale_weights_the_boundaries_gradient_not_the_rate():
    """α_β apart from α_z: the KL's value is the rate at any scale, and its gradient is
    ∇KL_z + s ∇KL_b, linear in s (so s = 0.5 lies halfway between s = 0 and s = 1)."""
    def kl_and_grad(scale):
        config = dataclasses.replace(C, boundary_kl_scale=scale)
        f = lambda p: jnp.sum(cp.unroll(p, H, SEGMENTS, KEY, config).kl)
        return jax.jit(jax.value_and_grad(f))(PARAMS)

    (v0, g0), (v_half, g_half), (v1, g1) = (kl_and_grad(s) for s in (0.0, 0.5, 1.0))
    assert float(v0) == pytest.approx(float(v1), rel=1e-6)
    assert float(v_half) == pytest.approx(float(v1), rel=1e-6)
    for a, b, c in zip(*(jax.tree.leaves(g["none"]) for g in (g0, g_half, g1))):
        np.testing.assert_allclose(np.asarray(b), (np.asarray(a) + np.asarray(c)) / 2,
                                   rtol=1e-4, atol=1e-6)
        assert np.abs(np.asarray(a) - np.asarray(c)).max() > 1e-4  # KL_b has a gradient to scale
    with pytest.raises(ValueError, match="boundary_kl_scale must be >= 0"):
        dataclasses.replace(C, boundary_kl_scale=-1.0)
