"""Kill and resume checks for ``test_main``: a run killed (SIGKILL, or Ctrl-C) in every training
phase and rerun with the same command ends with the results and parameters of an uninterrupted
run; another seed gives another run. Called from the launcher's end-to-end test, after its uninterrupted run.
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--preset=smoke", "--train_episodes=64", "--eval_episodes=16", "--chunk_episodes=64",
        "--rl_methods=internal_rl"]  # raw_action_rl has its own tests; one method keeps this fast


def launch(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "launch.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)

# Wall-clock figures, and the counts of programs compiled and loaded (a restart loads from the
# run's compilation cache what the interrupted process compiled): the only figures allowed to differ.
VOLATILE = ("_seconds", "_per_s", "compiled_programs", "loaded_programs")


def _start(workdir, log):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-m", "launch.main", *TINY, f"--workdir={workdir}"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def _interrupt_when(workdir, pattern, sig, tmp_path, name):
    """Starts the launcher, sends ``sig`` once ``workdir/pattern`` exists; returns (rc, output)."""
    path = tmp_path / f"{name}.log"
    with open(path, "w") as log:
        proc = _start(workdir, log)
        deadline = time.time() + 600
        while proc.poll() is None and not glob.glob(os.path.join(workdir, pattern)):
            assert time.time() < deadline, f"{pattern} never appeared"
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(sig)
        rc = proc.wait(timeout=600)
    return rc, path.read_text()


def _stable(results):
    return {phase: {k: v for k, v in figures.items() if not k.endswith(VOLATILE)}
            for phase, figures in results.items()}


def _metrics(workdir):
    out = {}
    for path in sorted(glob.glob(os.path.join(workdir, "**", "metrics.jsonl"), recursive=True)):
        with open(path) as f:
            records = [json.loads(line) for line in f]
        out[os.path.relpath(path, workdir)] = [{k: v for k, v in r.items() if k != "time"}
                                               for r in records]
    return out


def _final_params(workdir):
    from experiments import configs
    from launch import artefacts
    from launch.rundir import RunDir, read_json
    config = configs.from_dict(read_json(os.path.join(workdir, "config.json")))
    run = RunDir(workdir)
    return artefacts.load_params(run, config), artefacts.load_metacontroller(run, config)


def _results(workdir):
    with open(os.path.join(workdir, "results.json")) as f:
        return _stable(json.load(f))


def check_kills_in_every_phase_then_rerun_equal(reference, tmp_path):
    killed = str(tmp_path / "killed")
    # Every phase that checkpoints (the data phase writes each file whole, then renames it).
    points = [("pretrain/checkpoints/10", signal.SIGINT),
              ("metacontroller/*/checkpoints/10", signal.SIGKILL),
              ("internal_rl/internal_rl/checkpoints/2", signal.SIGKILL)]
    for i, (pattern, sig) in enumerate(points):
        rc, output = _interrupt_when(killed, pattern, sig, tmp_path, f"run{i}")
        if sig == signal.SIGKILL:
            assert rc == -signal.SIGKILL, output
        else:  # Ctrl-C: a checkpoint, then one line saying how to resume
            assert rc == 130, output
            assert "interrupted; progress up to the last checkpoint is saved. Rerun the same " \
                   "command to resume." in output, output
            assert "Traceback" not in output, output
    final = launch(*TINY, f"--workdir={killed}")
    assert final.returncode == 0, final.stderr
    assert "resuming from update 2" in final.stdout, final.stdout

    # The resumed internal-RL phase loads what the killed process compiled: it compiles no more
    # than the uninterrupted run's phase, which had the earlier phases' programs in memory
    # (without the run's compilation cache: 169 against 36).
    with open(os.path.join(killed, "results.json")) as f:
        resumed_rl = json.load(f)["internal_rl"]
    with open(os.path.join(reference, "results.json")) as f:
        fresh_rl = json.load(f)["internal_rl"]
    assert resumed_rl["loaded_programs"] > 0
    assert resumed_rl["compiled_programs"] <= fresh_rl["compiled_programs"], (resumed_rl,
                                                                              fresh_rl)
    assert _results(killed) == _results(reference)
    assert _metrics(killed) == _metrics(reference)
    import jax
    for a, b in zip(jax.tree.leaves(_final_params(killed)),
                    jax.tree.leaves(_final_params(reference))):
        np.testing.assert_array_equal(a, b)  # bit-identical on CPU


def check_another_seed_differs(reference, tmp_path):
    other = str(tmp_path / "seed1")
    # The data phase alone: every later phase's keys derive from the same seed, and its data differ.
    assert launch(*TINY, "--seed=1", "--phases=data", f"--workdir={other}").returncode == 0
    assert _results(other)["data"] != _results(reference)["data"]
    with open(os.path.join(other, "run.json")) as f:
        run = json.load(f)
    assert run["seed"] == 1 and run["jax_version"] and "git_revision" in run
