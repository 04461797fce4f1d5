"""Run configurations: frozen dataclasses, one section per concern, and the named presets.

Every field of every section is a command-line flag of the same name (``launch.flags``), so field
names are unique across sections. Defaults are the ``cpu`` preset: they run on a laptop CPU.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from hrl_internal.envs import gridworld

ENVS = ("gridworld",)
PRESETS = ("smoke", "cpu", "paper")


class ConfigError(ValueError):
    """A config value that is not allowed; ``field`` names the flag at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(f"--{field}: {message}")
        self.field = field


def _help(text: str, **kw: Any) -> Any:
    return dataclasses.field(metadata={"help": text}, **kw)


@dataclasses.dataclass(frozen=True)
class GridworldConfig:
    """gridworld-pinpad (App. A.1)."""

    grid_size: int = _help("side G of the square grid", default=7)
    num_objects: int = _help("coloured cells O (colours 0..O-1)", default=8)
    num_walls: int = _help("wall cells W", default=4)
    max_steps: int = _help("episode time limit T", default=100)
    solvable_only: bool = _help("resample layouts whose task cannot be solved within T",
                                default=True)

    def env_params(self, task_set: str = "pretrain") -> gridworld.EnvParams:
        return gridworld.EnvParams(
            grid_size=self.grid_size, num_objects=self.num_objects, num_walls=self.num_walls,
            max_steps=self.max_steps, task_set=task_set, solvable_only=self.solvable_only)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Expert demonstrations (§C.1.1)."""

    train_episodes: int = _help("expert episodes for training", default=20_000)
    eval_episodes: int = _help("held-out expert episodes", default=2_000)
    epsilon: float = _help("probability of a random non-terminating expert action", default=0.0)
    chunk_episodes: int = _help("episodes generated per jitted call (bounds memory)",
                                default=8_192)


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole run. ``env`` picks the environment section that applies."""

    env: str = _help(f"environment, one of {', '.join(ENVS)}", default="gridworld")
    seed: int = _help("master random seed; every phase derives its keys from it", default=0)
    gridworld: GridworldConfig = dataclasses.field(default_factory=GridworldConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)


SECTIONS = ("gridworld", "data")


def preset(name: str) -> Config:
    """The named preset: ``smoke`` (tests, seconds), ``cpu`` (the default main job), ``paper``."""
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    base = Config()
    if name == "smoke":
        return replace_fields(base, train_episodes=256, eval_episodes=64, chunk_episodes=128)
    if name == "paper":
        return replace_fields(base, train_episodes=100_000, eval_episodes=10_000,
                              chunk_episodes=16_384)
    return base


def field_names(config: Config) -> dict[str, str]:
    """Maps every leaf field name to its section ('' for top-level fields)."""
    names: dict[str, str] = {}
    for f in dataclasses.fields(config):
        if f.name in SECTIONS:
            for sub in dataclasses.fields(getattr(config, f.name)):
                assert sub.name not in names, f"field {sub.name} is defined twice"
                names[sub.name] = f.name
        else:
            names[f.name] = ""
    return names


def replace_fields(config: Config, **overrides: Any) -> Config:
    """Returns ``config`` with leaf fields replaced by name, whatever section holds them."""
    sections = field_names(config)
    unknown = sorted(set(overrides) - set(sections))
    if unknown:
        raise ConfigError(unknown[0], f"no such config field; known: {', '.join(sorted(sections))}")
    top = {k: v for k, v in overrides.items() if sections[k] == ""}
    for section in SECTIONS:
        sub = {k: v for k, v in overrides.items() if sections[k] == section}
        if sub:
            top[section] = dataclasses.replace(getattr(config, section), **sub)
    return dataclasses.replace(config, **top)


def leaf_fields(config: Config) -> dict[str, Any]:
    """Every leaf field name with its value, flattened over sections."""
    values = {}
    for name, section in field_names(config).items():
        holder = getattr(config, section) if section else config
        values[name] = getattr(holder, name)
    return values


_NON_NEGATIVE = {"seed", "num_walls"}


def validate(config: Config) -> None:
    """Raises ConfigError naming the first field whose value is not allowed."""
    if config.env not in ENVS:
        raise ConfigError("env", f"unknown env {config.env!r}; allowed: {', '.join(ENVS)}")
    for name, value in leaf_fields(config).items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            low = 0 if name in _NON_NEGATIVE else 1
            if value < low:
                raise ConfigError(name, f"must be {'>= 0' if low == 0 else 'positive'}, got {value}")
    if not 0.0 <= config.data.epsilon <= 1.0:
        raise ConfigError("epsilon", f"must be in [0, 1], got {config.data.epsilon}")
    for task_set in gridworld.TASK_SETS:
        try:
            config.gridworld.env_params(task_set).validate()
        except ValueError as e:
            field = str(e).split(" ", 1)[0]
            raise ConfigError(field if field in field_names(config) else "gridworld", str(e)) from e


def to_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def from_dict(values: dict[str, Any]) -> Config:
    sections = {s: type(getattr(Config(), s))(**values[s]) for s in SECTIONS if s in values}
    top = {k: v for k, v in values.items() if k not in SECTIONS}
    return Config(**top, **sections)
