"""Data parallelism: on 4 host devices (a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``), a sharded training step and a sharded RL
update give what the single-device ones give, and their programs really split the batch. Bad
device counts and batch sizes are refused naming the flag. Two processes joined on localhost
fetch a result split over both whole, and only process 0 writes files (the launcher's
two-process run: ``tests/launch/test_main_distributed.py``)."""
import json
import os
import subprocess
import sys

import jax
import pytest

from experiments import configs
from hrl_internal.utils import sharding
from launch import main as launcher

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_sharded_steps_equal_single_device_steps():
    env = dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS=os.environ.get("XLA_FLAGS", "")
               + " --xla_force_host_platform_device_count=4")
    result = subprocess.run([sys.executable, os.path.abspath(__file__)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["devices"] == 4
    # The metacontroller samples and splits its batch as pretraining does (shard_batch).
    for name in ("pretrain", "raw_action_rl"):
        figures = report[name]
        assert figures["split"], f"{name}: the sharded program does not split the batch"
        assert figures["max_abs_diff"] < 1e-4, (name, figures)
        assert figures["moved"] > 0, f"{name}: the step changed nothing"
    assert "--rl_slots: 6 does not split over 4 devices" in report["refusal"]


def test_one_device_runs_as_without_a_mesh_and_too_many_devices_are_refused():
    assert sharding.num_shards() == 1
    with sharding.use(sharding.batch_mesh(1)):
        assert sharding.active_mesh() is None  # one device: no mesh, the same programs
    with pytest.raises(sharding.ShardingError, match="--devices: 2 requested, 1 available"):
        launcher.data_parallel_mesh(configs.preset("smoke"), jax.device_count() + 1)


def test_two_processes_fetch_a_split_result_whole_and_only_process_0_writes(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "two_processes", str(tmp_path)], cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT, JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                 JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    reports = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
        reports.append(json.loads(stdout.strip().splitlines()[-1]))
    for i, report in enumerate(reports):
        assert report["process"] == i and report["devices"] == 2 and report["local_devices"] == 1
        assert not report["addressable"]  # each process holds half of the rows
        assert report["whole"] == [[r * 3 + c for c in range(3)] for r in range(8)]
        assert report["writes_files"] == (i == 0)
        assert report["read_after_sync"] == "written by process 0"


# --- the subprocesses ------------------------------------------------------------------------------

def _compare(run, state_of):
    """Runs ``run()`` without a mesh and over all 4 devices; the largest parameter difference,
    how far the step moved them, and whether the sharded program splits a leading axis over the
    mesh (XLA's partitioner then adds the all-reduce of the gradients)."""
    import numpy as np
    before = state_of(None)
    single = state_of(run())
    with sharding.use(sharding.batch_mesh(4)):
        sharded = state_of(run())
        text = run.lower().as_text()
    leaves = lambda t: [np.asarray(x) for x in jax.tree.leaves(t)]
    diff = max(float(np.abs(a - b).max()) for a, b in zip(leaves(single), leaves(sharded)))
    moved = max(float(np.abs(a - b).max()) for a, b in zip(leaves(single), leaves(before)))
    split = "sharding_constraint" in text and '[{"batch"}' in text
    return {"max_abs_diff": diff, "moved": moved, "split": split}


class _Program:
    """A jitted call with fixed arguments: call it, or lower it for its compiled text."""

    def __init__(self, fn, *args, **kwargs):
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def __call__(self):
        return self.fn(*self.args, **self.kwargs)

    def lower(self):
        return self.fn.lower(*self.args, **self.kwargs)


def _subprocess_main():
    import jax.numpy as jnp

    from hrl_internal.data import dataset, packing
    from hrl_internal.envs import gridworld
    from hrl_internal.models import transformer
    from hrl_internal.rl import raw_action, train
    from hrl_internal.training import pretrain

    env = gridworld.EnvParams(grid_size=4, num_objects=3, num_walls=1, max_steps=12,
                              task_set="0-1")
    model = transformer.TransformerConfig(obs_size=env.obs_size, num_actions=4, d_model=16,
                                          num_layers=2, num_heads=2, head_dim=8, mlp_dim=32,
                                          max_len=env.max_steps)
    episodes = dataset.to_numpy(dataset.generate(jax.random.split(jax.random.PRNGKey(0), 64), env))
    rows = jax.tree.map(jnp.asarray, packing.pack(episodes, env))
    report = {"devices": jax.device_count()}

    hyper = pretrain.PretrainHyper(batch_size=8, learning_rate=1e-2)
    state = pretrain.init_state(jax.random.PRNGKey(1), model, hyper)
    report["pretrain"] = _compare(
        _Program(pretrain.train_steps, state, rows, jax.random.PRNGKey(2), model=model, env=env,
                 hyper=hyper, num_steps=3),
        lambda out: state.params if out is None else out[0].params)

    spec = raw_action.RawActionSpec(model, env, num_slots=8, start_ticks=4, max_episodes=2)
    rl_hyper = train.RLHyper(learning_rate=1e-2)
    rl_state = jax.tree.map(lambda x: x[None], train.init_state(state.params, rl_hyper))
    report["raw_action_rl"] = _compare(
        _Program(train.train_steps, rl_state, None, jax.random.PRNGKey(5)[None],
                 learner="actions", spec=spec, hyper=rl_hyper, num_steps=2),
        lambda out: rl_state.params if out is None else out[0].params)

    config = configs.replace_fields(configs.preset("smoke"), rl_slots=6)
    try:
        launcher.data_parallel_mesh(config, 4)
        report["refusal"] = ""
    except sharding.ShardingError as e:
        report["refusal"] = str(e)
    print(json.dumps(report))


def _two_process_main(directory):
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    sharding.initialize_distributed()  # JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID
    mesh = sharding.batch_mesh()
    with sharding.use(mesh):
        rows = jax.device_put(np.arange(24.0).reshape(8, 3), NamedSharding(mesh, PartitionSpec()))
        split = jax.jit(lambda x: sharding.shard_batch(x * 1.0))(rows)
        whole = sharding.to_numpy({"rows": split})["rows"]
    path = os.path.join(directory, "shared.txt")
    if sharding.writes_files():
        with open(path, "w") as f:
            f.write("written by process 0")
    sharding.sync("written")
    print(json.dumps({"process": jax.process_index(), "devices": jax.device_count(),
                      "local_devices": jax.local_device_count(),
                      "addressable": split.is_fully_addressable,
                      "whole": jnp.asarray(whole).astype(int).tolist(),
                      "writes_files": sharding.writes_files(),
                      "read_after_sync": open(path).read()}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["two_processes"]:
        _two_process_main(sys.argv[2])
    else:
        _subprocess_main()
