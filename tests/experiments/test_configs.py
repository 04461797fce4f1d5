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


def test_round_trip_through_dict():
    config = configs.replace_fields(configs.Config(), num_walls=2, train_episodes=10)
    assert configs.from_dict(configs.to_dict(config)) == config


@pytest.mark.parametrize("overrides,field", [
    (dict(num_walls=-1), "num_walls"), (dict(max_steps=0), "max_steps"),
    (dict(seed=-1), "seed"), (dict(env="ant"), "env"), (dict(epsilon=-0.1), "epsilon"),
    (dict(chunk_episodes=0), "chunk_episodes"),
])
def test_validate_names_the_field(overrides, field):
    config = configs.replace_fields(configs.Config(), **overrides)
    with pytest.raises(configs.ConfigError) as e:
        configs.validate(config)
    assert e.value.field == field and str(e.value).startswith(f"--{field}:")


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        configs.Config().seed = 3
