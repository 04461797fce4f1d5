"""The launcher's ``--distributed``: two processes on this machine joined by
``jax.distributed.initialize`` on localhost (CPU devices, one per process), not one process with
``xla_force_host_platform_device_count``. They run as one data-parallel run; only process 0
writes the run directory; a command or workdir that differs between them stops both before any
compute."""
import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from hrl_internal.utils import sharding
from tests.launch.resume import ROOT, TINY, launch

PHASES = "--phases=data,pretrain"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch_processes(*per_process_args, timeout=600):
    """Starts one launcher per argument list as processes 0, 1, ... of one distributed run;
    returns their ``CompletedProcess``-like (returncode, stdout, stderr) triples."""
    port = _free_port()
    procs = []
    for i, args in enumerate(per_process_args):
        env = dict(os.environ, PYTHONPATH=ROOT, JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                   JAX_NUM_PROCESSES=str(len(per_process_args)), JAX_PROCESS_ID=str(i))
        procs.append(subprocess.Popen([sys.executable, "-m", "launch.main", "--distributed", *args],
                                      cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=timeout)
        out.append((proc.returncode, stdout, stderr))
    return out


def test_two_processes_run_as_one_and_only_process_0_writes(tmp_path):
    workdir = str(tmp_path / "run")
    runs = _launch_processes(*[[*TINY, PHASES, f"--workdir={workdir}"]] * 2)
    for rc, stdout, stderr in runs:
        assert rc == 0, stderr[-3000:]
        assert "devices=cpu x2 (data parallel)" in stdout
        assert "[pretrain] done" in stdout
    # Each training step logged once: the second process wrote nothing beside the first.
    lines = [json.loads(line) for line in open(os.path.join(workdir, "pretrain", "metrics.jsonl"))]
    steps = [line["step"] for line in lines]
    assert steps == sorted(set(steps)) and steps, steps
    for name in ("config.json", "run.json", "phases.json", "data/train.npz", "data/eval.npz",
                 "data/done.json", "pretrain/done.json", "plots/data_episodes.png",
                 "plots/pretrain_curves.png"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    assert not os.path.exists(os.path.join(workdir, ".process_check"))

    # The same run in one process, on one device: the same data, and the same figures up to the
    # order of the float additions the split batch changes.
    single = str(tmp_path / "single")
    alone = launch(*TINY, PHASES, f"--workdir={single}")
    assert alone.returncode == 0, alone.stderr
    two, one = (json.load(open(os.path.join(d, "results.json"))) for d in (workdir, single))
    assert {k: v for k, v in two["data"].items() if not k.endswith(("seconds", "_per_s", "programs"))} \
        == {k: v for k, v in one["data"].items() if not k.endswith(("seconds", "_per_s", "programs"))}
    for name in ("heldout_action_nll", "heldout_action_accuracy", "bayes_optimal_action_nll"):
        assert two["pretrain"][name] == pytest.approx(one["pretrain"][name], rel=1e-4), name

    # Orbax wrote the checkpoint collectively: one process alone restores what both saved.
    from experiments import configs
    from launch import artefacts
    from launch.phases import pretrain as pretrain_phase
    from launch.rundir import RunDir, read_json
    config = configs.from_dict(read_json(os.path.join(workdir, "config.json")))
    params_two = artefacts.load_params(RunDir(workdir), config)
    params_one = artefacts.load_params(RunDir(single), config)

    # Adam divides by each gradient's scale, so float-order noise reaches weights whose gradients
    # are tiny: measured over the whole model, against how far training moved it.
    from hrl_internal.training import pretrain
    _, model = artefacts.env_and_model(config)
    init = pretrain.init_state(
        jax.random.fold_in(jax.random.PRNGKey(config.seed), pretrain_phase.INIT_TAG), model,
        config.pretrain.hyper(config.skip_nonfinite)).params

    def norm(tree):
        return float(np.sqrt(sum(np.sum(np.square(x)) for x in jax.tree.leaves(tree))))

    gap = norm(jax.tree.map(np.subtract, params_two, params_one))
    moved = norm(jax.tree.map(np.subtract, params_one, init))
    assert gap < 0.02 * moved, (gap, moved)
    print(f"two-process against one-process parameters: {gap:.2e}; moved by training {moved:.2e}")


@pytest.mark.parametrize("second,flag", [
    (["--seed=1"], "--distributed"),  # another config on process 1
    ([], "--workdir"),  # process 1 in a directory process 0 does not write
])
def test_processes_that_disagree_stop_before_compute(tmp_path, second, flag):
    first = [*TINY, PHASES, f"--workdir={tmp_path / 'run'}"]
    other = [*TINY, PHASES, f"--workdir={tmp_path / ('run' if second else 'elsewhere')}", *second]
    for rc, _, stderr in _launch_processes(first, other, timeout=300):
        assert rc == 2, stderr[-3000:]
        lines = stderr.strip().splitlines()
        assert lines and lines[-1].startswith("error: ") and flag in lines[-1], stderr[-3000:]
        assert "Traceback" not in stderr
    assert not os.path.exists(tmp_path / "run" / "data")


@pytest.mark.parametrize("environ,message", [
    ({"JAX_NUM_PROCESSES": "two"}, "JAX_NUM_PROCESSES='two'"),
    ({"JAX_PROCESS_ID": "-1"}, "JAX_PROCESS_ID='-1'"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"}, "allowed: 0 to 1"),
])
def test_bad_process_environment_names_the_variable(environ, message):
    with pytest.raises(sharding.ShardingError) as error:
        sharding.distributed_args(environ)
    assert message in str(error.value) and "--distributed" in str(error.value)


def test_process_environment_is_read():
    assert sharding.distributed_args({"JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}) == \
        {"num_processes": 4, "process_id": 3}
    assert sharding.distributed_args({}) == {}  # left to JAX's cluster detection
