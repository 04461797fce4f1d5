import math

import jax
import jax.numpy as jnp
import numpy as np

from hrl_internal.models import backbone, hawk, transformer

TF = transformer.TransformerConfig(obs_size=6, num_actions=4, d_model=16, num_layers=2,
                                   num_heads=2, head_dim=8, mlp_dim=32, max_len=8)
HAWK = hawk.HawkConfig(obs_size=6, action_size=3, d_model=16, num_layers=2, lru_width=16,
                       num_heads=2, mlp_dim=32)


def test_dispatch_picks_the_model_module():
    assert backbone.module(TF) is transformer and backbone.module(HAWK) is hawk
    assert backbone.is_continuous(HAWK) and not backbone.is_continuous(TF)


def test_run_blocks_on_packed_rows_equals_apply_for_both_models():
    obs = jax.random.normal(jax.random.PRNGKey(0), (2, 7, 6))
    segments = jnp.array([[0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1, 1]])
    for model in (TF, HAWK):
        net = backbone.module(model)
        params = net.init(jax.random.PRNGKey(1), model)
        outputs, _ = net.apply(params, obs, model, segments=segments)
        e = backbone.run_blocks(params, net.embed(params, obs, model), 0, model.num_layers,
                                model, segments)
        heads = backbone.heads(params, e, model)
        for k in outputs:
            np.testing.assert_allclose(heads[k], outputs[k], rtol=1e-5, atol=1e-5)


def test_restart_cache_empties_only_restarted_state():
    lower, _ = backbone.init_caches(HAWK, 1, 1)
    lower = lower._replace(h=lower.h + 1.0)
    np.testing.assert_array_equal(backbone.restart_cache(lower, jnp.array(True)).h, 0.0)
    np.testing.assert_array_equal(backbone.restart_cache(lower, jnp.array(False)).h, 1.0)
    kv, _ = backbone.init_caches(TF, 1, 1)
    kv = kv._replace(position=jnp.array(5, jnp.int32))
    assert int(backbone.restart_cache(kv, jnp.array(True)).position) == 0
    assert int(backbone.restart_cache(kv, jnp.array(False)).position) == 5
    forgot = backbone.forget_before(kv, jnp.array([True]))
    assert int(forgot.first[0]) == 5, "positions before 5 are forgotten"
    assert int(backbone.restart_cache(forgot, jnp.array(True)).first[0]) == 0
    assert int(backbone.restart_cache(forgot, jnp.array(False)).first[0]) == 5


def _act(model, params, obs, layer, forget_at=None, forget=None):
    """Per-step action outputs ``[B, T, ...]`` of the cached stack, forgetting ``forget [B]``'s
    history before step ``forget_at``."""
    net = backbone.module(model)
    lower, upper = backbone.init_caches(model, layer, obs.shape[0], obs.shape[1])
    outs = []
    for t in range(obs.shape[1]):
        if t == forget_at:
            lower, upper = (backbone.forget_before(c, forget) for c in (lower, upper))
        e, lower = net.lower(params, lower, obs[:, t], model, layer)
        heads, upper = net.upper(params, upper, e, model, layer)
        outs.append(next(iter(heads.values())))
    return jnp.stack(outs, axis=1)


def test_forget_before_makes_a_sequence_start_afresh_and_leaves_the_others():
    obs = jax.random.normal(jax.random.PRNGKey(4), (2, 7, 6))
    for model in (TF, HAWK):
        params = backbone.module(model).init(jax.random.PRNGKey(5), model)
        full = _act(model, params, obs, 1)
        forgot = _act(model, params, obs, 1, forget_at=3, forget=jnp.array([True, False]))
        fresh = _act(model, params, obs[:1, 3:], 1)
        np.testing.assert_allclose(forgot[0, 3:], fresh[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(forgot[0, :3], full[0, :3], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(forgot[1], full[1], rtol=1e-5, atol=1e-6)
        assert float(jnp.abs(forgot[0, 3:] - full[0, 3:]).max()) > 1e-3, "the history mattered"


def test_actions_and_their_log_probabilities():
    gaussian = {"action_mean": jnp.array([0.2, -0.5, 0.9]),
                "action_log_std": jnp.log(jnp.array([0.5, 1.0, 2.0]))}
    a = jnp.array([0.0, 0.0, 0.5])
    want = sum(-0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
               for x, m, s in zip([0.0, 0.0, 0.5], [0.2, -0.5, 0.9], [0.5, 1.0, 2.0]))
    np.testing.assert_allclose(backbone.action_log_prob(gaussian, a), want, rtol=1e-5)
    np.testing.assert_allclose(backbone.greedy_action(gaussian), [0.2, -0.5, 0.9])
    draws = jax.vmap(lambda k: backbone.sample_action(k, gaussian))(
        jax.random.split(jax.random.PRNGKey(2), 2000))
    assert float(jnp.abs(draws).max()) <= 1.0, "actions stay in the actuators' box"
    assert abs(float(draws[:, 0].mean()) - 0.2) < 0.05
    logits = {"action_logits": jnp.log(jnp.array([0.1, 0.2, 0.3, 0.4]))}
    np.testing.assert_allclose(backbone.action_log_prob(logits, jnp.array(2)), math.log(0.3),
                               rtol=1e-5)
    assert int(backbone.greedy_action(logits)) == 3
    counts = np.bincount(np.asarray(jax.vmap(lambda k: backbone.sample_action(k, logits))(
        jax.random.split(jax.random.PRNGKey(3), 4000))), minlength=4) / 4000
    np.testing.assert_allclose(counts, [0.1, 0.2, 0.3, 0.4], atol=0.03)
