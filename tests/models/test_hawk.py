import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hrl_internal.models import hawk

C = hawk.HawkConfig(obs_size=6, action_size=3, d_model=16, num_layers=3, lru_width=16,
                    num_heads=2, mlp_dim=24)
B, T = 3, 12
PARAMS = jax.jit(hawk.init, static_argnums=1)(jax.random.PRNGKey(0), C)
RNG = np.random.default_rng(0)  # test data from numpy: no PRNG kernels to compile
OBS = jnp.asarray(RNG.normal(size=(B, T, C.obs_size)), jnp.float32)
U = jnp.asarray(RNG.normal(size=(C.d_model, C.d_model)) / 4, jnp.float32)
ALWAYS = jnp.ones(T, bool)
apply = jax.jit(hawk.apply, static_argnames=("config", "controller", "layer"))


@functools.partial(jax.jit, static_argnames=("layer", "config"))
def _full_and_stepped(params, obs, u, when, layer, config=C):
    """The controller ``e + (e @ u)`` at ``layer`` on steps where ``when [T]``, run once through
    ``apply`` and once through ``lower``/``upper`` one step at a time."""
    full = hawk.apply(params, obs, config, layer=layer,
                      controller=lambda e, t: e + (e @ u) * when[t][:, None])

    def step(states, inputs):
        obs_t, on = inputs
        low, up = states
        e, low = hawk.lower(params, low, obs_t, config, layer)
        out, up = hawk.upper(params, up, e + (e @ u) * on, config, layer)
        return (low, up), (e, out)

    _, (e, out) = jax.lax.scan(step, hawk.init_states(config, layer, obs.shape[0]),
                               (obs.swapaxes(0, 1), when))
    return full, jax.tree.map(lambda a: a.swapaxes(0, 1), (e, out))


def test_shapes_residual_indexing_and_log_std_bounds():
    outputs, residuals = apply(PARAMS, OBS, C)
    assert outputs["action_mean"].shape == outputs["action_log_std"].shape == (B, T, 3)
    assert outputs["obs_mean"].shape == (B, T, C.obs_size)
    assert residuals.shape == (B, T, C.num_layers + 1, C.d_model)
    np.testing.assert_allclose(residuals[:, :, 0], hawk.embed(PARAMS, OBS, C), rtol=1e-6)
    top = hawk.heads(PARAMS, residuals[:, :, -1], C)
    for name in outputs:
        np.testing.assert_allclose(top[name], outputs[name], rtol=1e-5, atol=1e-6)
    log_std = np.asarray(outputs["action_log_std"])
    assert np.all((log_std > C.min_log_std) & (log_std < C.max_log_std))
    assert abs(log_std.mean()) < 0.3 and np.ptp(log_std) > 0.1  # ~unit std, state-dependent
    assert np.all(np.diff(np.linalg.norm(residuals, axis=-1), axis=-1) != 0)  # every block writes
    low, up = hawk.init_states(C, 1, batch=B)
    assert low.h.shape == (1, B, C.lru_width) and up.h.shape == (2, B, C.lru_width)


def test_future_inputs_never_change_earlier_outputs():
    outputs, residuals = apply(PARAMS, OBS, C)
    outputs2, residuals2 = apply(PARAMS, OBS.at[:, 7:].add(1.0), C)
    for name in outputs:
        np.testing.assert_array_equal(outputs[name][:, :7], outputs2[name][:, :7])
        assert not np.allclose(outputs[name][:, 7:], outputs2[name][:, 7:], atol=1e-4)
    np.testing.assert_array_equal(residuals[:, :7], residuals2[:, :7])


def test_packed_segments_compute_what_separate_episodes_do():
    # Row 0 packs o[1, :5] and o[2, :7]; row 1 packs o[0, :3], o[1, :4], o[2, :5]. Alone, each
    # episode is the prefix of a plain row (the model is causal).
    rows = [[(1, 5), (2, 7)], [(0, 3), (1, 4), (2, 5)], [(0, 12)]]
    packed = jnp.stack([jnp.concatenate([OBS[r, :n] for r, n in row]) for row in rows])
    segments = jnp.asarray([sum(([i] * n for i, (_, n) in enumerate(row)), []) for row in rows])
    out, res = apply(PARAMS, packed, C, segments=segments)
    plain, plain_res = apply(PARAMS, OBS, C)
    for i, row in enumerate(rows):
        start = 0
        for r, n in row:
            for name in out:
                np.testing.assert_allclose(out[name][i, start:start + n], plain[name][r, :n],
                                           rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(res[i, start:start + n], plain_res[r, :n],
                                       rtol=1e-5, atol=1e-5)
            start += n
    unsegmented, _ = apply(PARAMS, packed, C)
    assert not np.allclose(out["action_mean"][0, 5:], unsegmented["action_mean"][0, 5:],
                           atol=1e-4)  # the resets mattered


@pytest.mark.parametrize("layer", [0, 2, 3])
def test_split_stepping_equals_the_full_forward_with_and_without_a_controller(layer):
    plain, plain_res = apply(PARAMS, OBS, C)
    for u in (jnp.zeros_like(U), U):
        (full, residuals), (e, stepped) = _full_and_stepped(PARAMS, OBS, u, ALWAYS, layer)
        for name in full:
            np.testing.assert_allclose(stepped[name], full[name], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(e, residuals[:, :, layer], rtol=1e-4, atol=1e-5)
        changed = not np.allclose(full["action_mean"], plain["action_mean"], atol=1e-4)
        assert changed == (u is U)
        np.testing.assert_array_equal(residuals[:, :, :layer + 1], plain_res[:, :, :layer + 1])


def test_identity_controller_reproduces_the_plain_pass():
    plain, plain_res = apply(PARAMS, OBS, C)
    same, same_res = apply(PARAMS, OBS, C, controller=lambda e, t: e, layer=1)
    for name in plain:
        np.testing.assert_array_equal(plain[name], same[name])
    np.testing.assert_array_equal(plain_res, same_res)


def test_a_controller_changes_only_what_lies_above_its_layer_and_after_its_step():
    layer, k = 2, 4
    at_k = jnp.arange(T) == k
    (base, base_res), _ = _full_and_stepped(PARAMS, OBS, jnp.zeros_like(U), at_k, layer)
    (edit, edit_res), (_, stepped) = _full_and_stepped(PARAMS, OBS, U, at_k, layer)
    np.testing.assert_array_equal(edit_res[:, :, :layer + 1], base_res[:, :, :layer + 1])
    np.testing.assert_array_equal(edit_res[:, :k], base_res[:, :k])
    for name in base:
        np.testing.assert_array_equal(edit[name][:, :k], base[name][:, :k])
        np.testing.assert_allclose(stepped[name], edit[name], rtol=1e-4, atol=1e-5)
        # The recurrence carries the one-step edit forward to every later step.
        for t in range(k, T):
            assert not np.allclose(edit[name][:, t], base[name][:, t], atol=1e-5), (name, t)
    assert not np.allclose(edit_res[:, k:, layer + 1:], base_res[:, k:, layer + 1:], atol=1e-4)


def test_layer_and_config_validation():
    with pytest.raises(ValueError, match="layer must be in"):
        hawk.apply(PARAMS, OBS, C, controller=lambda e, t: e, layer=4)
    with pytest.raises(ValueError, match="needs the layer"):
        hawk.apply(PARAMS, OBS, C, controller=lambda e, t: e)
    with pytest.raises(ValueError, match="layer must be in"):
        hawk.init_states(C, -1, batch=1)
    with pytest.raises(ValueError, match="num_heads"):
        hawk.HawkConfig(obs_size=6, action_size=3, lru_width=16, num_heads=3)
    with pytest.raises(ValueError, match="min_log_std"):
        hawk.HawkConfig(obs_size=6, action_size=3, min_log_std=1.0, max_log_std=1.0)


def test_a_narrower_lru_projects_back_to_the_stream():
    config = hawk.HawkConfig(obs_size=6, action_size=3, d_model=16, num_layers=2, lru_width=8,
                             num_heads=2, mlp_dim=24)
    params = jax.jit(hawk.init, static_argnums=1)(jax.random.PRNGKey(1), config)
    assert params["blocks"]["proj"]["w"].shape == (2, 8, 16)
    assert params["blocks"]["lru"]["gate_r"]["w"].shape == (2, 2, 4, 4)
    assert "proj" not in PARAMS["blocks"]  # lru_width == d_model: the RG-LRU writes directly
    (full, residuals), (e, stepped) = _full_and_stepped(params, OBS, U, ALWAYS, 1, config)
    assert residuals.shape == (B, T, 3, 16) and full["action_mean"].shape == (B, T, 3)
    for name in full:
        np.testing.assert_allclose(stepped[name], full[name], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(e, residuals[:, :, 1], rtol=1e-4, atol=1e-5)


def test_action_and_obs_nll_are_gaussian_negative_log_densities():
    mean, log_std, actions = (RNG.normal(size=(4, 5, 3)) for _ in range(3))
    outputs = {"action_mean": jnp.asarray(mean, jnp.float32),
               "action_log_std": jnp.asarray(log_std, jnp.float32)}
    std = np.exp(log_std)
    density = np.prod(np.exp(-(actions - mean) ** 2 / (2 * std**2)) / (np.sqrt(2 * np.pi) * std),
                      axis=-1)
    nll = hawk.action_nll(outputs, jnp.asarray(actions, jnp.float32))
    assert nll.shape == (4, 5)
    np.testing.assert_allclose(nll, -np.log(density), rtol=1e-5, atol=1e-5)
    pred, target = RNG.normal(size=(2, 4, 5, 6))
    got = hawk.obs_nll({"obs_mean": jnp.asarray(pred, jnp.float32)}, jnp.asarray(target))
    np.testing.assert_allclose(got, 0.5 * np.mean((pred - target) ** 2, -1), rtol=1e-5)
    wide = hawk.obs_nll({"obs_mean": jnp.asarray(np.concatenate([pred, pred], -1))},
                        jnp.asarray(np.concatenate([target, target], -1)))
    np.testing.assert_allclose(wide, got, rtol=1e-5)  # a mean: no growth with obs_size


def test_sampled_actions_follow_the_gaussian():
    outputs = {"action_mean": jnp.asarray([[0.5, -2.0, 0.0]] * 4000),
               "action_log_std": jnp.log(jnp.asarray([[0.1, 1.0, 3.0]] * 4000))}
    draws = np.asarray(hawk.sample_action(jax.random.PRNGKey(3), outputs))
    # Each mean within 4 standard errors of its own scale (0.1 / sqrt(4000) for the first): a
    # shared tolerance sized for the widest would pass the narrow ones with any bias below 0.2.
    standard_error = np.asarray([0.1, 1.0, 3.0]) / np.sqrt(4000)
    assert np.all(np.abs(draws.mean(0) - [0.5, -2.0, 0.0]) < 4 * standard_error), draws.mean(0)
    np.testing.assert_allclose(draws.std(0), [0.1, 1.0, 3.0], rtol=0.06)
    np.testing.assert_array_equal(hawk.mean_action(outputs), outputs["action_mean"])


@functools.cache
def _trained():
    """Adam on a synthetic task: a_t and the prediction target of o_{t+1} are fixed linear
    functions of o_t. Returns the gradients at init and the held-out action NLL before/after."""
    rng = np.random.default_rng(1)
    to_actions, to_next = (jnp.asarray(rng.normal(size=(C.obs_size, n)) / np.sqrt(C.obs_size),
                                       jnp.float32) for n in (3, C.obs_size))
    train_obs, test_obs = (jnp.asarray(rng.normal(size=(n, T, C.obs_size)), jnp.float32)
                           for n in (16, 8))

    def loss(params, obs):
        outputs, _ = hawk.apply(params, obs, C)
        action = jnp.mean(hawk.action_nll(outputs, obs @ to_actions))
        return action + 10.0 * jnp.mean(hawk.obs_nll(outputs, obs @ to_next)), action

    optimizer = optax.adam(3e-3)

    @jax.jit
    def train(params):
        def step(carry, _):
            params, opt_state = carry
            grads = jax.grad(lambda p: loss(p, train_obs)[0])(params)
            updates, opt_state = optimizer.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), None
        (trained, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), length=150)
        first = jax.grad(lambda p: loss(p, train_obs)[0])(params)
        return first, loss(params, test_obs)[1], loss(trained, test_obs)[1]

    return train(PARAMS)


def test_gradients_reach_every_parameter_of_every_block():
    grads, _, _ = _trained()
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        g = np.asarray(g)
        assert np.all(np.isfinite(g)), path
        per_block = g.reshape(C.num_layers, -1) if path[0].key == "blocks" else g[None]
        assert np.all(np.any(per_block != 0, axis=1)), path


def test_adam_learns_a_linear_policy():
    _, before, after = map(np.asarray, _trained())
    # N(0, I) against actions of variance ~1 starts near 3 x 1.4 nats; fitting the mean and
    # shrinking the std must take off several nats on held-out observations.
    assert before > 2.5, before
    assert after < before - 4.0, (before, after)
