import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.models import rglru

C = rglru.RGLRUConfig(width=6)
PARAMS = jax.jit(rglru.init, static_argnums=(1, 2))(jax.random.PRNGKey(0), 5, C)
RNG = np.random.default_rng(0)  # test data from numpy: no PRNG kernels to compile
X = jnp.asarray(RNG.normal(size=(11, 5)), jnp.float32)
RESETS = jnp.zeros(11, bool).at[4].set(True)
ENDS = jnp.zeros(11, bool).at[3].set(True)
apply = jax.jit(rglru.apply, static_argnames=("config", "reverse"))


@jax.jit
def _scan_steps(x, resets):
    def body(h, inputs):
        x_t, reset = inputs
        return rglru.step(PARAMS, jnp.where(reset, rglru.initial_state(C), h), x_t, C)
    return jax.lax.scan(body, rglru.initial_state(C), (x, resets))[1]


def test_config_validates_width():
    with pytest.raises(ValueError, match="width"):
        rglru.RGLRUConfig(width=0)


def test_init_puts_a_to_the_c_in_the_griffin_range():
    a = jax.nn.sigmoid(PARAMS["lambda"])
    assert np.all((a**8 >= 0.9 - 1e-6) & (a**8 <= 0.999 + 1e-6))
    assert np.ptp(np.asarray(a**8)) > 0.01  # spread over timescales, not one value


def test_apply_follows_the_rg_lru_equations():
    p = jax.tree.map(lambda x: np.asarray(x, np.float64), PARAMS)
    lin = lambda q, v: v @ q["w"] + q["b"]
    sigmoid = lambda v: 1 / (1 + np.exp(-v))
    gelu = lambda v: 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v**3)))
    x = np.asarray(X, np.float64)
    h, want = np.zeros(C.width), []
    for t in range(3):
        u = lin(p["in"], x[t])
        a = sigmoid(p["lambda"]) ** (8 * sigmoid(lin(p["gate_r"], u)))
        h = a * h + np.sqrt(1 - a**2) * sigmoid(lin(p["gate_i"], u)) * u
        want.append(lin(p["out"], gelu(lin(p["gate_out"], x[t])) * h))
    np.testing.assert_allclose(apply(PARAMS, X, C)[:3], np.stack(want), rtol=1e-4, atol=1e-5)


def test_scanning_step_equals_apply_with_and_without_resets():
    np.testing.assert_allclose(_scan_steps(X, jnp.zeros(11, bool)), apply(PARAMS, X, C),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_scan_steps(X, RESETS), apply(PARAMS, X, C, resets=RESETS),
                               rtol=1e-5, atol=1e-6)


def test_packed_row_equals_separate_runs_forward_and_reverse():
    y = apply(PARAMS, X, C, resets=RESETS)
    np.testing.assert_allclose(y[:4], apply(PARAMS, X[:4], C), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y[4:], apply(PARAMS, X[4:], C), rtol=1e-5, atol=1e-6)
    assert not np.allclose(y[4:], apply(PARAMS, X, C)[4:], atol=1e-4)  # the reset mattered
    y = apply(PARAMS, X, C, resets=ENDS, reverse=True)
    for part in (slice(0, 4), slice(4, 11)):
        np.testing.assert_allclose(y[part], apply(PARAMS, X[part], C, reverse=True),
                                   rtol=1e-5, atol=1e-6)


def test_reverse_is_the_mirror_of_forward_and_anticausal():
    y = apply(PARAMS, X, C, resets=ENDS, reverse=True)
    mirrored = apply(PARAMS, X[::-1], C, resets=ENDS[::-1])[::-1]
    np.testing.assert_allclose(y, mirrored, rtol=1e-5, atol=1e-6)
    changed = X.at[2].add(1.0)
    y2 = apply(PARAMS, changed, C, reverse=True)
    y1 = apply(PARAMS, X, C, reverse=True)
    np.testing.assert_array_equal(y1[3:], y2[3:])
    assert not np.allclose(y1[:3], y2[:3], atol=1e-5)
    y2 = apply(PARAMS, changed, C)
    y1 = apply(PARAMS, X, C)
    np.testing.assert_array_equal(y1[:2], y2[:2])
    assert not np.allclose(y1[2:], y2[2:], atol=1e-5)


def test_jit_vmap_and_finite_gradients():
    xs = jnp.asarray(RNG.normal(size=(3, 11, 5)), jnp.float32)
    resets = jnp.zeros((3, 11), bool).at[:, 6].set(True)
    batched = jax.jit(jax.vmap(lambda x, r: apply(PARAMS, x, C, resets=r)))(xs, resets)
    for i in range(3):
        np.testing.assert_allclose(batched[i], apply(PARAMS, xs[i], C, resets=resets[i]),
                                   rtol=1e-5, atol=1e-6)
    steps = jax.jit(jax.vmap(lambda h, x: rglru.step(PARAMS, h, x, C)))
    h, y = steps(jnp.zeros((3, C.width)), xs[:, 0])
    np.testing.assert_allclose(y, batched[:, 0], rtol=1e-5, atol=1e-6)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(rglru.apply(p, X, C, resets=RESETS) ** 2)))(PARAMS)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert np.all(np.isfinite(g)) and np.any(g != 0), path


def test_heads_make_the_gates_block_diagonal():
    heads = rglru.RGLRUConfig(width=6, num_heads=3)
    params = jax.jit(rglru.init, static_argnums=(1, 2))(jax.random.PRNGKey(1), 5, heads)
    assert params["gate_r"]["w"].shape == params["gate_i"]["w"].shape == (3, 2, 2)
    assert PARAMS["gate_r"]["w"].shape == (6, 6)  # the default single head stays dense
    # The same block, written with dense block-diagonal matrices: head k's gates read only u's
    # k-th slice.
    dense = dict(params)
    for name in ("gate_r", "gate_i"):
        blocks = np.asarray(params[name]["w"])
        full = np.zeros((6, 6), np.float32)
        for k in range(3):
            full[2 * k:2 * k + 2, 2 * k:2 * k + 2] = blocks[k]
        dense[name] = {"w": jnp.asarray(full), "b": params[name]["b"]}
    y = apply(params, X, heads, resets=RESETS)
    np.testing.assert_allclose(y, apply(dense, X, C, resets=RESETS), rtol=1e-5, atol=1e-6)
    h, y0 = rglru.step(params, rglru.initial_state(heads), X[0], heads)
    np.testing.assert_allclose(y0, y[0], rtol=1e-5, atol=1e-6)
    # The gates matter (an off-diagonal entry changes the output): the equality is not vacuous.
    leaky = dict(dense, gate_r={"w": dense["gate_r"]["w"].at[0, 5].add(3.0),
                                "b": params["gate_r"]["b"]})
    assert not np.allclose(apply(leaky, X, C), apply(dense, X, C), atol=1e-4)
    with pytest.raises(ValueError, match="num_heads"):
        rglru.RGLRUConfig(width=6, num_heads=4)
