import jax
import numpy as np

from hrl_internal.envs import gridworld
from hrl_internal.models import transformer
from hrl_internal.rl import raw_action, train
from hrl_internal.training.checkpoint import Checkpointer
from hrl_internal.utils import sharding

# A 3x3 grid with two colours and no walls: random play solves "0-1" often enough to learn from.
EASY = gridworld.EnvParams(grid_size=3, num_objects=2, num_walls=0, task_set="0-1", max_steps=8)


def _setup():
    model = transformer.TransformerConfig(obs_size=EASY.obs_size, num_actions=4, d_model=16,
                                          num_layers=1, num_heads=2, head_dim=8, mlp_dim=32,
                                          max_len=EASY.max_steps)
    spec = raw_action.RawActionSpec(model, EASY, num_slots=32, start_ticks=16, max_episodes=8)
    return spec, transformer.init(jax.random.PRNGKey(0), model)


def test_packed_rescoring_equals_the_cached_acting_pass():
    spec, params = _setup()
    batch, stats = jax.jit(raw_action.rollout, static_argnums=3)(
        params, None, jax.random.PRNGKey(1), spec)
    mask = np.asarray(batch.decide)
    assert int(stats.decisions) == int(stats.env_steps) == mask.sum()
    new = np.asarray(raw_action.log_probs(params, batch, spec))
    np.testing.assert_allclose(new[mask], np.asarray(batch.log_prob)[mask], rtol=1e-4, atol=1e-4)


def test_a_short_run_raises_success_and_resumes_from_a_checkpoint_exactly(tmp_path):
    """Also the learner loop of every method (``train.train_steps``): 2 x 20 updates, the second
    20 also from an orbax round trip of the state after the first."""
    spec, params = _setup()
    hyper = train.RLHyper(learning_rate=3e-3, update_epochs=2)
    # Placed as the launcher places it: the restored state then reuses the same compiled program.
    state = sharding.place(jax.tree.map(lambda x: x[None], train.init_state(params, hyper)))
    keys = jax.random.PRNGKey(2)[None]
    run = lambda s: train.train_steps(s, None, keys, learner="actions", spec=spec, hyper=hyper,
                                      num_steps=20)
    half, first = run(state)
    whole, second = run(half)
    ckpt = Checkpointer(str(tmp_path / "ckpt"))
    ckpt.save(20, half)
    resumed, resumed_second = run(ckpt.restore(state))
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(second["success"]),
                                  np.asarray(resumed_second["success"]))
    success = np.concatenate([np.asarray(first["success"])[0], np.asarray(second["success"])[0]])
    assert np.all(np.isfinite(np.asarray(second["loss"])))
    # ~500 episodes per 8 updates: a 0.08 rise is several standard errors.
    assert success[-8:].mean() > success[:8].mean() + 0.08, success
