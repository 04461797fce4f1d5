import dataclasses

import jax
import numpy as np

from experiments import steer_closed_loop
from hrl_internal.analysis import rollout, steering

EPISODES = 64


def test_expert_moves_reach_every_pair_start_and_identity_controllers_change_nothing(tiny):
    model, params = tiny["model"], tiny["params"]
    env = dataclasses.replace(tiny["env"], task_set="posttrain")
    key, layer = jax.random.PRNGKey(0), 1

    # The expert walking every pair-start segment never misses its colour.
    guided, _ = steer_closed_loop.rollout_with_expert_moves(key, params, None, 1.0, model, env,
                                                            layer, EPISODES, env.max_steps)
    anatomy = rollout.failure_anatomy(guided, env.max_steps)
    assert anatomy["pair_start_colour_success"] == 1.0

    # Identity controllers (b = 0, as initialised) at any scale act as the unsteered model.
    alone, first = steer_closed_loop.rollout_with_expert_moves(key, params, None, 1.0, model,
                                                               env, layer, EPISODES, 0)
    identity = steering.layer_controllers(
        steering.init_state(jax.random.PRNGKey(1), model, (layer,), 4, 1e-3).controllers, 0)
    steered, first_steered = steer_closed_loop.rollout_with_expert_moves(
        key, params, identity, 2.0, model, env, layer, EPISODES, 0)
    np.testing.assert_array_equal(alone.progress, steered.progress)
    assert float(first) == float(first_steered)
    assert 0.0 < float(first) <= 1.0
    # The model alone, on the post-training task, misses some pair starts the expert reaches.
    assert rollout.failure_anatomy(alone, env.max_steps)["pair_start_colour_success"] < 1.0
