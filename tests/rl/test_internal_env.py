import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.envs import ant_pinpad, gridworld
from hrl_internal.models import metacontroller, transformer
from hrl_internal.rl import internal_env


def _z(n, dim, seed=5):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, dim))


def test_reset_and_step_vmap_and_sum_a_span_of_ticks(frozen_setup):
    s = frozen_setup
    keys = jax.random.split(jax.random.PRNGKey(0), 6)
    e, state = jax.jit(jax.vmap(internal_env.reset, in_axes=(0, None, None)),
                       static_argnums=2)(keys, s["frozen"], s["spec"])
    assert e.shape == (6, s["model"].d_model)
    step = jax.jit(jax.vmap(internal_env.step, in_axes=(None, 0, 0, None)), static_argnums=3)
    z = _z(6, s["meta"].latent_dim)
    e2, state2, reward, done, info = step(s["frozen"], state, z, s["spec"])
    steps = np.asarray(info["env_steps"])
    assert np.all(steps >= 1)
    np.testing.assert_array_equal(np.asarray(state2.env_state.time), steps)
    # The span ends exactly at a switch (β >= threshold) or at the episode's end.
    for i in range(6):
        one = jax.tree.map(lambda x: x[i], state)
        for k in range(int(steps[i])):
            one, r, switch, tick_info = internal_env.tick(s["frozen"], one, z[i], s["spec"])
            last = k == int(steps[i]) - 1
            assert bool(switch | tick_info["done"]) == last
        np.testing.assert_allclose(np.asarray(one.e), np.asarray(e2[i]), rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(reward) >= 0)


def test_forced_switch_spans_one_step(frozen_setup):
    s = frozen_setup
    _, state = internal_env.reset(jax.random.PRNGKey(3), s["frozen"], s["forced_spec"])
    _, state, _, done, info = internal_env.step(s["frozen"], state, _z(1, 3)[0], s["forced_spec"])
    assert int(info["env_steps"]) == 1


def test_compile_switches_on_a_clock_of_segment_rate_steps(frozen_setup):
    """CompILE has no causal switching unit: a new code every ``segment_rate`` env steps, and its
    params (no GRU or switching unit) are all the env reads besides the decoder."""
    s = frozen_setup
    meta = dataclasses.replace(s["meta"], variant="compile", segment_rate=4)
    spec = dataclasses.replace(s["spec"], meta=meta)
    frozen = s["frozen"]._replace(meta={"decoder": s["frozen"].meta["decoder"]})
    # Jitted whole: op by op, a cold cache compiles every small operation of the caches' set-up.
    _, state = jax.jit(internal_env.reset, static_argnums=2)(jax.random.PRNGKey(3), frozen, spec)
    step = jax.jit(internal_env.step, static_argnums=3)
    spans = []
    for z in _z(3, 3):
        _, state, _, done, info = step(frozen, state, z, spec)
        spans.append(int(info["env_steps"]))
        if bool(done):
            break
    assert spans[:-1] == [4] * (len(spans) - 1) and 1 <= spans[-1] <= 4


def test_residual_equals_the_full_sequence_pass_with_the_codes_applied(frozen_setup):
    """The cached, step-by-step internal env sees the same e_{t,l} as a full pass over the episode's
    observations with the same codes applied (the edit reaches only the blocks above l)."""
    s = frozen_setup
    spec, frozen = s["spec"], s["frozen"]
    _, state = internal_env.reset(jax.random.PRNGKey(4), frozen, spec)
    codes = _z(9, 3, seed=9)  # one per step; the last step's code is applied, never ticked
    es, env_states = [state.e], [state.env_state]
    for t in range(8):
        state, _, _, info = internal_env.tick(frozen, state, codes[t], spec)
        if bool(info["done"]):
            break
        es.append(state.e)
        env_states.append(state.env_state)
    n = len(es)
    obs = jnp.stack([gridworld.observe(st, spec.env) for st in env_states])[None]
    a, b = jax.vmap(lambda z: metacontroller.controller_decoder(frozen.meta, z))(codes[:n])
    edit = lambda e, t: jax.vmap(metacontroller.apply_controller)(e[0], a, b)[None]
    _, residuals = transformer.apply(frozen.base, obs, spec.model, controller=edit, layer=1)
    np.testing.assert_allclose(np.stack(es), residuals[0, :, 1], rtol=1e-4, atol=1e-4)


def test_restart_begins_the_fresh_episode_as_a_reset_would(frozen_setup):
    s = frozen_setup
    spec, frozen = s["spec"], s["frozen"]
    _, fresh = gridworld.reset(jax.random.PRNGKey(11), spec.env)
    e_reset, _ = internal_env.reset(jax.random.PRNGKey(12), frozen, spec, fresh)
    _, state = internal_env.reset(jax.random.PRNGKey(13), frozen, spec)
    z = _z(1, 3)[0]
    for _ in range(spec.env.max_steps):
        state, _, switch, info = internal_env.tick(frozen, state, z, spec, jnp.array(True), fresh)
        if bool(info["done"]):
            break
    assert bool(info["restart"]) and bool(switch)
    assert int(state.env_state.time) == 0 and int(state.lower_cache.position) == 1
    np.testing.assert_allclose(np.asarray(state.e), np.asarray(e_reset), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(state.history), 0.0)


def _known_answer(s, decoder="subgoal_controllers"):
    """Ground-truth switching with the known-answer decoder (4 random rank-2 subgoal controllers)
    or the metacontroller's, on a 4 x 4 grid without walls, where even the untrained model
    completes subgoals."""
    env = gridworld.EnvParams(grid_size=4, num_objects=4, num_walls=0, max_steps=30,
                              task_set="0-1-2-3")
    model = dataclasses.replace(s["model"], obs_size=env.obs_size, max_len=env.max_steps)
    meta = dataclasses.replace(s["meta"], latent_dim=4)
    spec = dataclasses.replace(s["spec"], model=model, env=env, decoder=decoder, meta=meta,
                               switching="ground_truth")
    a = jax.random.normal(jax.random.PRNGKey(21), (4, 2, model.d_model))
    b = jax.random.normal(jax.random.PRNGKey(22), (4, model.d_model, 2))
    decoder_params = ({"a": a, "b": b} if decoder == "subgoal_controllers"
                      else metacontroller.init(jax.random.PRNGKey(23), meta))
    return spec, internal_env.Frozen(transformer.init(jax.random.PRNGKey(0), model),
                                     decoder_params)


@pytest.mark.parametrize("decoder", ["subgoal_controllers", "metacontroller"])
def test_ground_truth_switching_fires_at_subgoal_changes(frozen_setup, decoder):
    """With either decoder; the known-answer one also acts alike for codes of the same argmax."""
    spec, frozen = _known_answer(frozen_setup, decoder)
    tick = jax.jit(internal_env.tick, static_argnums=3)
    changes = 0
    for seed in range(60):  # until a subgoal change was seen
        if changes:
            break
        _, state = internal_env.reset(jax.random.PRNGKey(30 + seed), frozen, spec)
        for t in range(spec.env.max_steps):
            before = int(gridworld.current_subgoal(state.env_state))
            z = jax.random.normal(jax.random.PRNGKey(100 * seed + t), (4,))
            # Any code with the same argmax acts alike: the same next state, bit for bit.
            same = z.at[jnp.argmax(z)].add(3.0)
            new, _, switch, info = tick(frozen, state, z, spec)
            if decoder == "subgoal_controllers":
                twin, _, _, twin_info = tick(frozen, state, same, spec)
                assert int(info["action"]) == int(twin_info["action"])
                np.testing.assert_array_equal(np.asarray(new.e), np.asarray(twin.e))
            after = int(gridworld.current_subgoal(new.env_state))
            assert bool(switch) == (after != before), (seed, t)
            changes += after != before
            state = new
            if bool(info["done"]):
                break
    assert changes > 0  # the check above saw switches, not only their absence


def test_decoder_and_switching_refuse_unknown_names_and_non_gridworld_envs(frozen_setup):
    with pytest.raises(ValueError, match="decoder must be one of"):
        dataclasses.replace(frozen_setup["spec"], decoder="oracle")
    with pytest.raises(ValueError, match="switching must be one of"):
        dataclasses.replace(frozen_setup["spec"], switching="oracle")
    with pytest.raises(ValueError, match="no switching unit"):
        dataclasses.replace(frozen_setup["spec"], decoder="subgoal_controllers")
    # A bank of controllers with a code every step needs no switching unit either.
    forced = dataclasses.replace(frozen_setup["forced_spec"], decoder="subgoal_controllers")
    assert forced.known_answer and forced.forced_switch and not forced.ground_truth_switching
    with pytest.raises(ValueError, match="gridworld"):
        dataclasses.replace(frozen_setup["spec"], switching="ground_truth",
                            env=ant_pinpad.AntEnvParams())


@pytest.mark.parametrize("switching", ["ground_truth", "gate"])
def test_forgetting_leaves_the_base_only_the_steps_since_the_last_switch(frozen_setup, switching):
    """With ``forget`` the residual after each tick is that of a fresh pass over the observations
    since the last switch (ground truth: the subgoal changes; the gate: every tick at threshold 0),
    where without it the whole episode counts."""
    spec, frozen = _known_answer(frozen_setup)
    if switching == "gate":
        spec = dataclasses.replace(frozen_setup["spec"], beta_threshold=0.0, env=spec.env,
                                   model=spec.model)
        frozen = frozen._replace(meta=frozen_setup["frozen"].meta)
    runs = {}
    for forget in ("both", "none"):
        fspec = dataclasses.replace(spec, forget=forget)
        tick = jax.jit(internal_env.tick, static_argnums=3)
        for seed in range(20):  # an episode with a switch before its end
            _, state = internal_env.reset(jax.random.PRNGKey(40 + seed), frozen, fspec)
            es, obs, starts, start = [state.e], [gridworld.observe(state.env_state, spec.env)], [0], 0
            for t in range(spec.env.max_steps):
                z = jax.random.normal(jax.random.PRNGKey(200 + t), (spec.meta.latent_dim,))
                state, _, switch, info = tick(frozen, state, z, fspec)
                if bool(info["done"]):
                    break
                start = t + 1 if bool(switch) else start
                es.append(state.e)
                obs.append(gridworld.observe(state.env_state, spec.env))
                starts.append(start)
            if 0 < max(starts) < len(es) - 1:
                break
        runs[forget] = es, obs, starts
    # One pass whose packed segments start at the switches: each step sees its segment only.
    fresh = lambda obs, starts: transformer.apply(
        frozen.base, jnp.stack(obs)[None], spec.model,
        segments=jnp.asarray(starts)[None])[1][0, :, spec.layer]
    es, obs, starts = runs["both"]
    assert max(starts) > 0
    np.testing.assert_allclose(np.stack(es), fresh(obs, starts), rtol=1e-4, atol=1e-4)
    # Without forgetting the same check fails: the history before the switch changes e.
    es, obs, starts = runs["none"]
    assert max(starts) > 0
    assert float(jnp.abs(np.stack(es) - fresh(obs, starts)).max()) > 1e-3
    with pytest.raises(ValueError, match="forget must be one of"):
        dataclasses.replace(spec, forget="all")
