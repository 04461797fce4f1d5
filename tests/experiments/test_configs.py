import dataclasses

import pytest

from experiments import configs


def test_presets_are_valid_and_ordered_by_size():
    sizes = []
    for name in configs.PRESETS:
        config = configs.preset(name)
        configs.validate(config)
        sizes.append(config.data.train_episodes)
    assert sizes == sorted(sizes)
    assert configs.preset("cpu") == configs.Config(), "the defaults are the cpu preset"


def test_every_field_name_is_unique_and_settable():
    config = configs.Config()
    names = configs.field_names(config)
    assert {"seed", "grid_size", "train_episodes", "epsilon"} <= set(names)
    changed = configs.replace_fields(config, grid_size=9, epsilon=0.1, seed=4)
    assert changed.gridworld.grid_size == 9 and changed.data.epsilon == 0.1 and changed.seed == 4
    with pytest.raises(configs.ConfigError, match="--gridsize: no such config field"):
        configs.replace_fields(config, gridsize=9)


def test_meta_seed_defaults_to_the_run_seed_and_sets_the_metacontroller_key_alone():
    import jax
    import numpy as np

    from launch.phases import metacontroller as meta_phase

    def init_leaves(**overrides):
        config = configs.replace_fields(configs.preset("smoke"), **overrides)
        return jax.tree.leaves(meta_phase.template(config, "standard", 0.3).params)

    assert configs.Config().meta.seed(7) == 7
    assert configs.replace_fields(configs.Config(), meta_seed=3).meta.seed(7) == 3
    same = zip(init_leaves(seed=1), init_leaves(seed=1, meta_seed=1))
    assert all(np.array_equal(a, b) for a, b in same)
    other = zip(init_leaves(seed=1), init_leaves(seed=1, meta_seed=2))
    assert not all(np.array_equal(a, b) for a, b in other)


def test_round_trip_through_dict():
    config = configs.replace_fields(configs.Config(), num_walls=2, train_episodes=10)
    assert configs.from_dict(configs.to_dict(config)) == config


@pytest.mark.parametrize("overrides,field", [
    (dict(num_walls=-1), "num_walls"), (dict(max_steps=0), "max_steps"),
    (dict(seed=-1), "seed"), (dict(env="atari"), "env"), (dict(epsilon=-0.1), "epsilon"),
    (dict(chunk_episodes=0), "chunk_episodes"),
    (dict(pretrain_schedule="linear"), "pretrain_schedule"),
    (dict(pretrain_schedule="cosine", pretrain_warmup=6_000), "pretrain_warmup"),
    (dict(pretrain_anneal=0.0), "pretrain_anneal"), (dict(pretrain_anneal=1.5), "pretrain_anneal"),
    (dict(rl_methods="subgoal_controllers", steer_layers="0,1", layer=2), "rl_methods"),
    (dict(policy_log_std=-9.0), "policy_log_std"), (dict(raw_action_lr=0.0), "raw_action_lr"),
    (dict(meta_seed=-2), "meta_seed"),
    (dict(noise_warmup=-1), "noise_warmup"), (dict(steer_forget="all"), "steer_forget"),
    (dict(rl_forget="always"), "rl_forget"),
    (dict(meta_forget="all"), "meta_forget"),
    (dict(hard_gate_steps=-1), "hard_gate_steps"),
    (dict(env="ant", meta_rotate=True), "meta_rotate"),
])
def test_validate_names_the_field(overrides, field):
    config = configs.replace_fields(configs.Config(), **overrides)
    with pytest.raises(configs.ConfigError) as e:
        configs.validate(config)
    assert e.value.field == field and str(e.value).startswith(f"--{field}:")


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        configs.Config().seed = 3


# Random configs at the validator: every accepted one runs a step, every rejected one names a field.
_CANDIDATES = {
    "grid_size": [0, 3, 5, 7, 40], "num_objects": [0, 4, 8, 9], "num_walls": [-1, 0, 4],
    "max_steps": [0, 8, 100], "d_model": [0, 16, 32], "num_layers": [0, 1, 2, 3],
    "num_heads": [0, 1, 2], "head_dim": [0, 8], "mlp_dim": [-3, 16], "layer": [-1, 0, 1, 2, 5],
    "alpha": ["0.1", "-1", "x", "0,0.5", ""], "steer_layers": ["all", "1", "0,7", "a"],
    "rl_task": ["0-1-2-3", "0-1-2", "9-9", "posttrain", "bogus"], "rl_max_steps": [1, 8, 200],
    "epsilon": [-0.5, 0.0, 0.2, 2.0], "pretrain_lr": [0.0, 1e-3, -1.0],
    "on_nonfinite": ["stop", "skip", "ignore"], "beta_threshold": [0.0, 0.5, 1.5],
    "steps_per_call": [0, 7, 10], "controller_rank": [0, 4], "latent_dim": [0, 4],
    "gate_temperature": [-1.0, 0.0, 0.5],
    "metacontroller_variant": ["standard", "cotrain,standard", "magic"],
    "rl_methods": ["internal_rl", "forced_switch", "raw_action_rl,raw_action_rl"],
}


def _one_step(config):
    """Env reset/step, base model init, a loss and its gradient with a controller at ``layer``."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from hrl_internal.envs import gridworld
    from hrl_internal.models import intervention, transformer
    from hrl_internal.training import losses

    env = config.gridworld.env_params("pretrain")
    obs, state = jax.vmap(gridworld.reset, in_axes=(0, None))(
        jax.random.split(jax.random.PRNGKey(0), 2), env)
    next_obs, _, _, _, _ = jax.vmap(gridworld.step, in_axes=(0, 0, None))(
        state, jnp.zeros(2, jnp.int32), env)
    model = config.model.transformer(env)
    params = transformer.init(jax.random.PRNGKey(1), model)
    sequence = jnp.stack([obs, next_obs], axis=1)  # [2 envs, 2 steps, obs_size]
    controllers = intervention.init_subgoal_controllers(
        jax.random.PRNGKey(2), 1, model.d_model, config.meta.controller_rank)
    steer = intervention.subgoal_controller(controllers, jnp.zeros((2, 2), jnp.int32))

    def loss(p):
        outputs, _ = transformer.apply(p, sequence, model, controller=lambda e, t: steer(e),
                                       layer=config.meta.layer)
        nll, _ = losses.action_losses(outputs["action_logits"], jnp.zeros((2, 2), jnp.int32))
        return nll.mean()

    value, grads = jax.value_and_grad(loss)(params)
    assert np.isfinite(float(value))
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_random_configs_are_either_runnable_or_rejected_naming_a_field():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    overrides = st.sets(st.sampled_from(sorted(_CANDIDATES)), min_size=1, max_size=4).flatmap(
        lambda keys: st.fixed_dictionaries({k: st.sampled_from(_CANDIDATES[k]) for k in keys}))

    @settings(max_examples=6, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(overrides)
    def check(values):
        config = configs.replace_fields(configs.preset("smoke"), **values)
        try:
            configs.validate(config)
        except configs.ConfigError as e:
            assert e.field in configs.field_names(config), str(e)
            assert str(e).startswith(f"--{e.field}: ") and len(str(e).splitlines()) == 1, str(e)
            return
        _one_step(config)

    check()


def test_ant_presets_are_valid_ordered_and_use_a_full_linear_controller():
    sizes = []
    for name in configs.PRESETS:
        config = configs.preset(name, env="ant")
        configs.validate(config)
        assert config.env == "ant"
        assert config.meta.controller_rank >= config.model.d_model, "Table A10: full linear U"
        assert config.meta.layer == config.model.num_layers // 2
        sizes.append(config.data.train_episodes)
    assert sizes == sorted(sizes)
    with pytest.raises(configs.ConfigError, match="--env: unknown env"):
        configs.preset("cpu", env="atari")


@pytest.mark.parametrize("overrides,field", [
    (dict(ant_cell_size=0.0), "ant_cell_size"), (dict(expert_lr=-1.0), "expert_lr"),
    (dict(rl_max_steps=501), "rl_max_steps"), (dict(ant_num_walls=-1), "ant_num_walls"),
    (dict(expert_envs=3, expert_unroll=3), "expert_envs"), (dict(rl_task="0-9"), "rl_task"),
    (dict(rl_methods="internal_rl,subgoal_controllers"), "rl_methods"),
    (dict(rl_methods="gt_switching"), "rl_methods"),
])
def test_ant_validation_names_the_field(overrides, field):
    config = configs.replace_fields(configs.preset("cpu", env="ant"), **overrides)
    with pytest.raises(configs.ConfigError) as e:
        configs.validate(config)
    assert e.value.field == field, str(e.value)
