import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.models import intervention, transformer as tf

C = tf.TransformerConfig(obs_size=24, num_actions=4, d_model=32, num_layers=3, num_heads=2,
                         head_dim=16, mlp_dim=48, num_buckets=8, max_distance=16, max_len=12)
PARAMS = tf.init(jax.random.PRNGKey(0), C)
OBS = jax.random.bernoulli(jax.random.PRNGKey(1), 0.3, (3, 12, 24)).astype(jnp.float32)
apply = jax.jit(tf.apply, static_argnames=("config", "controller", "layer"))


def test_shapes_and_residual_indexing():
    outputs, residuals = apply(PARAMS, OBS, C)
    assert outputs["action_logits"].shape == (3, 12, 4)
    assert outputs["obs_logits"].shape == (3, 12, 24)
    assert residuals.shape == (3, 12, C.num_layers + 1, C.d_model)
    np.testing.assert_allclose(residuals[:, :, 0], tf.embed(PARAMS, OBS, C), rtol=1e-6)
    np.testing.assert_allclose(tf.heads(PARAMS, residuals[:, :, -1])["action_logits"],
                               outputs["action_logits"], rtol=1e-5, atol=1e-6)


def test_future_inputs_never_change_earlier_outputs():
    outputs, residuals = apply(PARAMS, OBS, C)
    changed = OBS.at[:, 7:].set(1.0 - OBS[:, 7:])
    outputs2, residuals2 = apply(PARAMS, changed, C)
    np.testing.assert_array_equal(outputs["action_logits"][:, :7], outputs2["action_logits"][:, :7])
    np.testing.assert_array_equal(residuals[:, :7], residuals2[:, :7])
    assert not np.allclose(outputs["action_logits"][:, 7:], outputs2["action_logits"][:, 7:])


def test_packed_segments_compute_what_separate_sequences_do():
    a, b = OBS[0, :5], OBS[1, :7]
    packed = jnp.concatenate([a, b])[None]
    segments = jnp.asarray([[0] * 5 + [1] * 7])
    out_packed, _ = tf.apply(PARAMS, packed, C, segments=segments)
    out_a, _ = tf.apply(PARAMS, a[None], C)
    out_b, _ = tf.apply(PARAMS, b[None], C)
    np.testing.assert_allclose(out_packed["action_logits"][0, :5], out_a["action_logits"][0],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out_packed["action_logits"][0, 5:], out_b["action_logits"][0],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer", [0, 1, 3])
def test_identity_and_zero_controllers_reproduce_the_plain_pass(layer):
    plain, plain_res = apply(PARAMS, OBS, C)
    same, same_res = apply(PARAMS, OBS, C, controller=lambda e, t: e, layer=layer)
    np.testing.assert_array_equal(plain["action_logits"], same["action_logits"])
    np.testing.assert_array_equal(plain_res, same_res)
    zero = intervention.init_subgoal_controllers(jax.random.PRNGKey(2), 4, C.d_model, 5)
    steer = intervention.subgoal_controller(zero, jnp.zeros((3, 12), jnp.int32))
    zeroed, _ = apply(PARAMS, OBS, C, controller=lambda e, t: steer(e), layer=layer)
    np.testing.assert_allclose(plain["action_logits"], zeroed["action_logits"], atol=1e-6)


def test_a_controller_changes_only_what_lies_above_its_layer():
    layer = 1
    plain, plain_res = apply(PARAMS, OBS, C)
    pushed, pushed_res = apply(PARAMS, OBS, C, controller=lambda e, t: e * 1.5 + 0.3, layer=layer)
    np.testing.assert_array_equal(plain_res[:, :, :layer + 1], pushed_res[:, :, :layer + 1])
    assert not np.allclose(plain_res[:, :, layer + 1:], pushed_res[:, :, layer + 1:])
    assert not np.allclose(plain["action_logits"], pushed["action_logits"])


def test_controller_sees_time_and_works_under_vmap_and_grad():
    def loss(shift, obs):
        controller = lambda e, t: e + shift * (t[:, None] == 4)  # edit only step 4
        outputs, _ = tf.apply(PARAMS, obs, C, controller=controller, layer=2)
        return outputs["action_logits"].sum()
    grads = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(jnp.ones(C.d_model), OBS[:, None])
    assert grads.shape == (3, C.d_model)
    assert np.all(np.isfinite(grads)) and np.abs(grads).sum() > 0
    shifted, _ = tf.apply(PARAMS, OBS, C, controller=lambda e, t: e + 1.0 * (t[:, None] == 4),
                          layer=2)
    plain, _ = apply(PARAMS, OBS, C)
    # Two different programs: equal up to float rounding; a leak from step 4 would be ~0.1.
    np.testing.assert_allclose(shifted["action_logits"][:, :4], plain["action_logits"][:, :4],
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("layer,length", [(0, None), (2, None), (3, None), (2, 8)])
def test_split_cached_acting_equals_the_full_forward(layer, length):
    """Also with a cache shorter than the context (``length``), over sequences that fit in it."""
    obs = OBS if length is None else OBS[:, :length]
    plain, residuals = apply(PARAMS, obs, C)

    def step(caches, obs_t):
        lower, upper = caches
        e, lower = tf.lower(PARAMS, lower, obs_t, C, layer)
        out, upper = tf.upper(PARAMS, upper, e, C, layer)
        return (lower, upper), (e, out["action_logits"])

    caches = tf.init_caches(C, layer, batch=OBS.shape[0], length=length)
    _, (e, logits) = jax.jit(lambda c, o: jax.lax.scan(step, c, o))(caches, obs.swapaxes(0, 1))
    e, logits = e.swapaxes(0, 1), logits.swapaxes(0, 1)
    np.testing.assert_allclose(logits, plain["action_logits"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(e, residuals[:, :, layer], rtol=1e-4, atol=1e-5)


def test_cache_length_beyond_the_context_is_refused():
    with pytest.raises(ValueError, match="cache length must be in"):
        tf.init_caches(C, 1, batch=1, length=C.max_len + 1)


def test_layer_out_of_range_is_refused():
    with pytest.raises(ValueError, match="layer must be in"):
        tf.apply(PARAMS, OBS, C, controller=lambda e, t: e, layer=4)
    with pytest.raises(ValueError, match="needs the layer"):
        tf.apply(PARAMS, OBS, C, controller=lambda e, t: e)


def test_relative_buckets_are_exact_near_and_log_spaced_far():
    d = jnp.arange(40)
    b = np.asarray(tf.relative_bucket(d, 8, 16))
    np.testing.assert_array_equal(b[:4], [0, 1, 2, 3])
    assert np.all(np.diff(b) >= 0) and b[-1] == 7 and len(set(b[4:16])) > 1


def test_egocentric_view_centres_the_agent_and_marks_the_border():
    from hrl_internal.envs import gridworld as gw
    env = gw.EnvParams()
    _, state = gw.reset(jax.random.PRNGKey(3), env)
    state = state.replace(agent_cell=jnp.int32(0))  # top-left corner
    obs = gw.observe(state, env)
    view = np.asarray(tf.egocentric(obs[None], 7))[0].reshape(13, 13, 13)
    # The agent's own cell is the window centre (6, 6); the border lies up and left of it.
    assert view[6, 6, 12] == 0 and view[5, 6, 12] == 1 and view[6, 5, 12] == 1
    assert view[6, 7, 12] == 0 and view[12, 12, 12] == 0
    for colour, cell in enumerate(np.asarray(state.object_cells)):
        r, c = divmod(int(cell), 7)
        assert view[6 + r, 6 + c, 4 + colour] == 1
    assert view[..., :12].sum() == 12  # every wall and object once
    config = tf.TransformerConfig(obs_size=637, num_actions=4, d_model=16, num_layers=1,
                                  num_heads=2, head_dim=8, mlp_dim=16, egocentric_grid=7)
    assert config.input_size == 13 * 13 * 13
    params = tf.init(jax.random.PRNGKey(0), config)
    assert tf.apply(params, obs[None, None], config)[0]["action_logits"].shape == (1, 1, 4)


def test_egocentric_embedding_is_the_dense_window_product_for_every_agent_cell():
    # The gathered embedding must equal egocentric(obs) @ w exactly (same parameters, same map),
    # also with the agent on a coloured cell and on every border cell, and its gradient too.
    from hrl_internal.envs import gridworld as gw
    env = gw.EnvParams()
    _, state = gw.reset(jax.random.PRNGKey(5), env)
    cells = jnp.arange(env.num_cells)
    obs = jax.vmap(lambda c: gw.render(c, state.object_cells, state.wall_cells, env))(cells)
    w = jax.random.normal(jax.random.PRNGKey(1), (13 * 13 * 13, 8))
    dense = lambda w: tf.egocentric(obs, 7) @ w
    np.testing.assert_allclose(tf.egocentric_embed(w, obs, 7), dense(w), atol=1e-5)
    probe = jax.random.normal(jax.random.PRNGKey(2), (env.num_cells, 8))
    grad = lambda f: jax.grad(lambda w: jnp.sum(f(w) * probe))(w)
    np.testing.assert_allclose(grad(lambda w: tf.egocentric_embed(w, obs, 7)), grad(dense),
                               atol=1e-5)
