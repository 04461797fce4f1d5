"""Where a run's phases leave what later phases read, and how to load it: the datasets, the base
model, the supervised subgoal controllers and the metacontrollers. A phase that needs another
phase's output asks here, so the phases do not import each other.

Layout under the run directory (``rundir.RunDir``; the files each phase writes besides these are
its own)::

    data/<split>.npz                        expert episodes (``split``: train, eval)
    pretrain/checkpoints/                   the base model's training state (orbax)
    steer/checkpoints/                      every steered layer's subgoal controllers
    metacontroller/<variant>_a<α>/checkpoints/   one metacontroller per variant and α
"""
from __future__ import annotations

import os
from typing import Any

import jax

from experiments import configs
from hrl_internal.analysis import steering
from hrl_internal.data import ant_dataset, dataset, packing
from hrl_internal.training import metacontroller as meta_training
from hrl_internal.training import pretrain
from hrl_internal.training.checkpoint import Checkpointer
from launch.rundir import RunDir

# fold_in tags that give each split its own key stream from the master seed.
SPLIT_TAGS = {"train": 1, "eval": 2, "posttrain_check": 3}


def split_key(seed: int, split: str) -> jax.Array:
    """The key a data split's episodes are generated from."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), SPLIT_TAGS[split])


def split_path(run: RunDir, split: str) -> str:
    return os.path.join(run.phase_dir("data"), f"{split}.npz")


def load_split(run: RunDir, config: configs.Config, split: str) -> Any:
    """Host episodes of a data split (``dataset.Episodes``; the ant's ``ant_expert.Rollout``)."""
    path = split_path(run, split)
    if config.env == "ant":
        return ant_dataset.load(path, config.ant.env_params("pretrain"))[0]
    return dataset.load(path, config.gridworld.env_params("pretrain"))[0]


def env_and_model(config: configs.Config) -> tuple[Any, Any]:
    """The pretraining environment's parameters and the base model's config."""
    if config.env == "ant":
        env = config.ant.env_params("pretrain")
        return env, config.model.hawk(env)
    env = config.gridworld.env_params("pretrain")
    return env, config.model.transformer(env)


def pack(episodes: Any, env: Any) -> packing.PackedRows | packing.DenseRows:
    """A split's episodes as the rows the models read (gridworld: re-rendered; ant: stored)."""
    if isinstance(episodes, dataset.Episodes):
        return packing.pack(episodes, env)
    return packing.pack_dense(episodes, env.max_steps)


def base_checkpointer(run: RunDir) -> Checkpointer:
    return Checkpointer(os.path.join(run.phase_dir("pretrain"), "checkpoints"))


def load_params(run: RunDir, config: configs.Config, step: int | None = None) -> Any:
    """The trained base model's parameters: the latest pretrain checkpoint, or the one saved at
    ``step`` (an earlier point of the same training, where ``--checkpoint_every`` kept it)."""
    _, model = env_and_model(config)
    template = pretrain.init_state(jax.random.PRNGKey(0), model,
                                   config.pretrain.hyper(config.skip_nonfinite))
    return base_checkpointer(run).restore(template, step).params


def steer_checkpointer(run: RunDir) -> Checkpointer:
    return Checkpointer(os.path.join(run.phase_dir("steer"), "checkpoints"))


def load_controllers(run: RunDir, config: configs.Config, layer: int) -> dict[str, jax.Array]:
    """The finished steer phase's controllers of ``layer``: ``{a [G, r, d], b [G, d, r]}``."""
    model = config.model.transformer(config.gridworld.env_params("pretrain"))
    layers = config.analysis.layers(model.num_layers)
    if layer not in layers:
        raise configs.ConfigError("layer", f"the steer phase trained controllers at layers "
                                  f"{layers}, not at {layer}")
    a = config.analysis
    template = steering.init_state(jax.random.PRNGKey(0), model, tuple(layers), a.steer_rank,
                                   a.steer_lr)
    ckpt = steer_checkpointer(run)
    if ckpt.latest_step() != a.steer_steps:
        raise FileNotFoundError(f"{ckpt.directory} holds no finished steer phase (step "
                                f"{ckpt.latest_step()} of {a.steer_steps}): run --phases=steer")
    state = ckpt.restore(template)
    return steering.layer_controllers(state.controllers, layers.index(layer))


def meta_run_name(variant: str, alpha: float) -> str:
    return f"{variant}_a{alpha:g}"


def meta_checkpointer(run: RunDir, variant: str, alpha: float) -> Checkpointer:
    return Checkpointer(os.path.join(run.phase_dir("metacontroller"),
                                     meta_run_name(variant, alpha), "checkpoints"))


def meta_template(config: configs.Config, variant: str, alpha: float,
                  key: jax.Array, base: Any = None) -> meta_training.MetaState:
    """A fresh metacontroller state of the run's shapes, initialised from ``key`` (the compile
    variant's encoder from the pretrained ``base``; without it, a state of the right shapes)."""
    _, model = env_and_model(config)
    return meta_training.init_state(key, config.meta.module(model.d_model), model,
                                    config.meta.hyper(alpha, variant, config.skip_nonfinite),
                                    base=base, layer=config.meta.layer)


def load_metacontroller(run: RunDir, config: configs.Config, variant: str | None = None,
                        alpha: float | None = None) -> Any:
    """A trained metacontroller's params (``{"meta": ..., ["base": ...]}``); default: the main one."""
    variant = variant or config.meta.variants()[0]
    alpha = config.meta.alphas(variant)[0] if alpha is None else alpha
    template = meta_template(config, variant, alpha, jax.random.PRNGKey(0))
    return meta_checkpointer(run, variant, alpha).restore(template).params
