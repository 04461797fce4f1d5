"""Benchmark: gridworld env steps/s and resets/s by batch size, expert dataset episodes/s, and the
MJX ant-pinpad env's steps/s and resets/s by batch size.

    python -m experiments.bench_env --out=experiments/results/bench_env.json
    python -m experiments.bench_env --envs=ant --ant_batches=1,128,1024 --out=/tmp/ant.json

Each row is timed after a warm-up call (compile seconds are reported separately), as the best of
``--repeats`` runs. Prints a table and writes the rows, the device and the jax version to JSON.
"""
from __future__ import annotations

import json
import os
import platform

import jax
import jax.numpy as jnp
from absl import app, flags, logging

from experiments.timing import time_call
from hrl_internal.data import dataset
from hrl_internal.envs import ant_pinpad, gridworld

flags.DEFINE_string("out", "experiments/results/bench_env.json", "where to write the JSON")
flags.DEFINE_list("batch_sizes", ["1", "1024", "16384"], "env batch sizes")
flags.DEFINE_integer("steps", 100, "steps per timed rollout (one lax.scan)")
flags.DEFINE_integer("dataset_episodes", 10_000, "episodes in the expert-dataset row")
flags.DEFINE_integer("repeats", 3, "timed runs per row (the best is reported)")
flags.DEFINE_list("envs", ["gridworld", "ant"], "which environments' rows to run")
flags.DEFINE_list("ant_batches", ["1", "128", "1024"], "ant env batch sizes")
flags.DEFINE_integer("ant_steps", 50, "ant steps per timed rollout (one lax.scan)")
FLAGS = flags.FLAGS


def bench_steps(params, batch, steps, repeats):
    @jax.jit
    def rollout(key):
        reset_key, act_key = jax.random.split(key)
        _, states = jax.vmap(lambda k: gridworld.reset(k, params))(
            jax.random.split(reset_key, batch))
        actions = jax.random.randint(act_key, (steps, batch), 0, gridworld.NUM_ACTIONS)

        def body(states, a):
            obs, states, reward, done, _ = jax.vmap(gridworld.step, in_axes=(0, 0, None))(
                states, a, params)
            return states, reward.sum() + obs[:, 0].sum()
        return jax.lax.scan(body, states, actions)[1]

    @jax.jit
    def resets(key):
        return jax.vmap(lambda k: gridworld.reset(k, params))(jax.random.split(key, batch))[0]

    key = jax.random.PRNGKey(0)
    compile_roll, roll = time_call(rollout, key, repeats=repeats)
    compile_reset, reset = time_call(resets, key, repeats=repeats)
    # The rollout includes one batched reset; it is subtracted only where it is a small part: at
    # batch 1 a reset (with its solvability search) costs about as much as the 100 steps, and
    # timing noise then made the difference negative (a step rate of 1e11/s). There the row
    # times steps and reset together, a lower bound on the step rate.
    includes_reset = roll < 2 * reset
    step_s = roll if includes_reset else roll - reset
    return [
        {"row": "env_step", "batch": batch, "per_s": batch * steps / step_s,
         "unit": "env steps/s", "compile_s": compile_roll, "seconds": step_s,
         "includes_reset": includes_reset},
        {"row": "env_reset", "batch": batch, "per_s": batch / reset, "unit": "resets/s",
         "compile_s": compile_reset, "seconds": reset},
    ]


def bench_dataset(params, episodes, repeats):
    keys = jax.random.split(jax.random.PRNGKey(1), episodes)
    compile_s, best = time_call(lambda k: dataset.generate(k, params).actions, keys, repeats=repeats)
    return {"row": "expert_dataset", "batch": episodes, "per_s": episodes / best,
            "unit": "episodes/s", "compile_s": compile_s, "seconds": best}


def bench_ant(params, batch, steps, repeats):
    """Rows for the MJX ant: batched resets, and steps (with observations) in one lax.scan.

    Resets are jitted apart from the rollout, so the step row times physics and rules alone.
    """
    @jax.jit
    def resets(key):
        return jax.vmap(ant_pinpad.reset, in_axes=(0, None))(jax.random.split(key, batch), params)

    @jax.jit
    def rollout(states, key):
        actions = jax.random.uniform(key, (steps, batch, ant_pinpad.ACTION_SIZE),
                                     minval=-1.0, maxval=1.0)

        def body(states, a):
            states = jax.vmap(ant_pinpad.step, in_axes=(0, 0, None))(states, a, params)
            obs = jax.vmap(ant_pinpad.observe, in_axes=(0, None))(states, params)
            return states, states.reward.sum() + obs[:, 0].sum()
        return jax.lax.scan(body, states, actions)[1]

    key = jax.random.PRNGKey(0)
    compile_reset, reset = time_call(resets, key, repeats=repeats)
    states = jax.block_until_ready(resets(key))
    compile_roll, roll = time_call(rollout, states, key, repeats=repeats)
    return [
        {"row": "ant_step", "batch": batch, "per_s": batch * steps / roll,
         "unit": "env steps/s", "compile_s": compile_roll, "seconds": roll},
        {"row": "ant_reset", "batch": batch, "per_s": batch / reset, "unit": "resets/s",
         "compile_s": compile_reset, "seconds": reset},
    ]


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    params = gridworld.EnvParams()
    ant_params = ant_pinpad.AntEnvParams()
    rows = []
    if "gridworld" in FLAGS.envs:
        for batch in map(int, FLAGS.batch_sizes):
            rows += bench_steps(params, batch, FLAGS.steps, FLAGS.repeats)
        rows.append(bench_dataset(params, FLAGS.dataset_episodes, FLAGS.repeats))
    if "ant" in FLAGS.envs:
        for batch in map(int, FLAGS.ant_batches):
            rows += bench_ant(ant_params, batch, FLAGS.ant_steps, FLAGS.repeats)
    device = jax.devices()[0]
    report = {
        "device": f"{device.platform}: {device.device_kind}", "cpu_count": os.cpu_count(),
        "machine": platform.machine(), "jax_version": jax.__version__,
        "env_params": params.__dict__, "steps_per_rollout": FLAGS.steps,
        "ant_env_params": ant_params.__dict__, "ant_steps_per_rollout": FLAGS.ant_steps,
        "rows": rows,
    }
    print(f"device {report['device']}, {os.cpu_count()} cores, jax {jax.__version__}")
    print(f"{'row':<16}{'batch':>8}{'per second':>16}  {'unit':<14}{'compile s':>10}")
    for r in rows:
        print(f"{r['row']:<16}{r['batch']:>8}{r['per_s']:>16,.0f}  {r['unit']:<14}"
              f"{r['compile_s']:>10.2f}")
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    with open(FLAGS.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    app.run(main)
