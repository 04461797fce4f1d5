"""Shared fixtures: a tiny expert dataset and a tiny base model trained on it once per session
(once for all pytest-xdist workers: the first builds it, the others load it)."""
import fcntl
import os
import pickle
import subprocess
import sys

# The suite is bound by XLA compilation: one persistent compilation cache lets both pytest-xdist
# workers and every launcher subprocess reuse what any of them compiled. Set before jax is
# imported (subprocesses inherit the environment).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".pytest_cache", "jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
# Tests run small programs once: LLVM's expensive optimisation passes cost more compile time than
# they save run time (about a third off a cold launcher run), and XLA:CPU's older loop emitters
# compile faster than its fusion emitters (a cold smoke launcher run 72 s -> 46 s, the ant's data
# phase 41 s -> 32 s). Same semantics, same checks.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 "
                                   "--xla_llvm_disable_expensive_passes=true "
                                   "--xla_cpu_use_fusion_emitters=false")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.data import dataset, packing
from hrl_internal.envs import gridworld
from hrl_internal.models.transformer import TransformerConfig
from hrl_internal.training import pretrain

TINY_STEPS = 300


def _build_tiny():
    env = gridworld.EnvParams()
    model = TransformerConfig(obs_size=env.obs_size, num_actions=4, d_model=48, num_layers=2,
                              num_heads=2, head_dim=24, mlp_dim=96, max_len=env.max_steps,
                              egocentric_grid=env.grid_size)
    hyper = pretrain.PretrainHyper(batch_size=16, learning_rate=2e-3, obs_loss_weight=0.0)
    # Both splits from one call (one compiled program); each episode depends on its key alone.
    keys = jnp.concatenate([jax.random.split(jax.random.PRNGKey(0), 6000),
                            jax.random.split(jax.random.PRNGKey(1), 300)])
    episodes = dataset.to_numpy(dataset.generate(keys, env))
    train_eps = jax.tree.map(lambda a: a[:6000], episodes)
    test_eps = jax.tree.map(lambda a: a[6000:], episodes)
    rows = jax.tree.map(jnp.asarray, packing.pack(train_eps, env))
    test_rows = jax.tree.map(jnp.asarray, packing.pack(test_eps, env))
    state = pretrain.init_state(jax.random.PRNGKey(2), model, hyper)
    first_loss = pretrain.evaluate(state.params, test_rows, model=model, env=env)["action_nll"]
    state, _ = pretrain.train_steps(state, rows, jax.random.PRNGKey(3), model=model, env=env,
                                    hyper=hyper, num_steps=TINY_STEPS)
    return dict(env=env, model=model, hyper=hyper, rows=rows, test_rows=test_rows,
                params=state.params, initial_heldout_nll=float(first_loss))


# The tiny model trains for 300 steps: run time, not compile time, so it is built in a process with
# the CPU backend's optimisations on (about three times faster there than at level 0).
_FAST_XLA_FLAGS = "--xla_llvm_disable_expensive_passes=true"


def _write_tiny(path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump(jax.tree.map(
            lambda x: np.asarray(x) if isinstance(x, jax.Array) else x, _build_tiny()), f)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, worker_id):
    # One build for all pytest-xdist workers (the first builds it, the others wait and load it).
    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if worker_id != "master" else shared
    path = shared / "tiny.pkl"
    with open(shared / "tiny.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            env = dict(os.environ, PYTHONPATH=root, XLA_FLAGS=_FAST_XLA_FLAGS)
            subprocess.run([sys.executable, "-c", "import sys; from tests.conftest import "
                            "_write_tiny; _write_tiny(sys.argv[1])", str(path)],
                           cwd=root, env=env, check=True, timeout=600)
        with open(path, "rb") as f:
            data = pickle.load(f)
    return jax.tree.map(lambda x: jnp.asarray(x) if isinstance(x, np.ndarray) else x, data)


def pytest_configure(config):
    config.addinivalue_line("markers", "longest: a launcher run of minutes, in subprocesses; "
                                       "each starts a pytest-xdist worker")


def pytest_collection_modifyitems(config, items):
    """Starts each pytest-xdist worker on one of the longest tests. Left where they fall, both
    came late and one ran alone for minutes at the end while the other worker sat idle. xdist's
    load scheduler first hands worker k the k-th chunk of ``len(items) // workers // 4`` tests in
    collection order (``xdist/scheduler/load.py``), so each long test heads a chunk."""
    longest = [item for item in items if item.get_closest_marker("longest")]
    ordered = [item for item in items if not item.get_closest_marker("longest")]
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    chunk = max(2, len(items) // max(workers, 1) // 4) if workers > 1 else 0
    for k, item in enumerate(longest):
        ordered.insert(min(k * chunk, len(ordered)), item)
    items[:] = ordered
