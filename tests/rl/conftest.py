"""A tiny frozen base model and metacontroller (untrained decoder, but with a strong edit) for the
internal-environment tests."""
import dataclasses

import jax
import pytest

from hrl_internal.envs import gridworld
from hrl_internal.models import metacontroller, transformer
from hrl_internal.rl import internal_env


@pytest.fixture(scope="module")
def frozen_setup():
    env = gridworld.EnvParams(task_set="0-1-2-3", max_steps=30)
    model = transformer.TransformerConfig(obs_size=env.obs_size, num_actions=4, d_model=16,
                                          num_layers=2, num_heads=2, head_dim=8, mlp_dim=32,
                                          max_len=env.max_steps, init_scale=1.0)
    meta = metacontroller.MetacontrollerConfig(d_model=16, latent_dim=3, history_dim=4,
                                               embed_dim=4, encoder_hidden=8, decoder_hidden=8,
                                               rank=2, switch_hidden=8)
    base = transformer.init(jax.random.PRNGKey(0), model)
    meta_params = metacontroller.init(jax.random.PRNGKey(1), meta)
    spec = internal_env.InternalEnvSpec(model, meta, env, layer=1, beta_threshold=0.5)
    return dict(env=env, model=model, meta=meta, spec=spec,
                frozen=internal_env.Frozen(base, meta_params),
                forced_spec=dataclasses.replace(
                    spec, meta=dataclasses.replace(meta, variant="forced_switch")))
