"""Benchmark: base-model training tokens/s and cached-rollout env steps/s (model in the loop).

    python -m experiments.bench_model --preset=cpu --out=experiments/results/bench_model_cpu.json

Model sizes come from ``--preset`` (``paper`` = Table A16). Each row is timed after a warm-up call
(compile seconds reported separately), best of ``--repeats``. Prints a table, writes JSON.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from absl import app, flags, logging

from experiments import configs
from experiments.timing import device_info, time_call, write_report
from hrl_internal.analysis import rollout
from hrl_internal.data import dataset, packing
from hrl_internal.training import pretrain

flags.DEFINE_string("preset", "cpu", "model and batch sizes from this preset")
flags.DEFINE_string("out", None, "JSON path (default experiments/results/bench_model_<preset>.json)")
flags.DEFINE_list("rollout_batches", ["1", "1024"], "episodes per cached rollout")
flags.DEFINE_integer("train_batch", None, "packed rows per training step (default: the preset's)")
flags.DEFINE_integer("train_steps", 10, "training steps per timed call")
flags.DEFINE_integer("repeats", 3, "timed runs per row (the best is reported)")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    config = configs.preset(FLAGS.preset)
    env = config.gridworld.env_params("pretrain")
    model = config.model.transformer(env)
    batch = FLAGS.train_batch or config.pretrain.batch_size
    hyper = config.pretrain.hyper()
    hyper = type(hyper)(**{**hyper.__dict__, "batch_size": batch})
    episodes = dataset.to_numpy(dataset.generate(jax.random.split(jax.random.PRNGKey(0), 2048), env))
    rows = jax.tree.map(jnp.asarray, packing.pack(episodes, env))
    state = pretrain.init_state(jax.random.PRNGKey(1), model, hyper)
    key = jax.random.PRNGKey(2)
    train = lambda: pretrain.train_steps(state, rows, key, model=model, env=env, hyper=hyper,
                                         num_steps=FLAGS.train_steps)[1]
    compile_s, seconds = time_call(train, repeats=FLAGS.repeats)
    slots = batch * env.max_steps * FLAGS.train_steps
    fill = float(jnp.mean(rows.mask))
    out = [{"row": "pretrain", "batch": batch, "per_s": slots / seconds, "unit": "tokens/s",
            "real_steps_per_s": slots * fill / seconds, "compile_s": compile_s,
            "seconds_per_step": seconds / FLAGS.train_steps}]
    for n in map(int, FLAGS.rollout_batches):
        result = lambda: rollout.rollout(key, state.params, model, env, n).length
        compile_s, seconds = time_call(result, repeats=FLAGS.repeats)
        out.append({"row": "cached_rollout", "batch": n,
                    "per_s": n * env.max_steps / seconds, "unit": "env steps/s",
                    "compile_s": compile_s, "seconds": seconds})
    report = {**device_info(), "preset": FLAGS.preset, "model": model.__dict__, "rows": out,
              "note": "tokens = packed slots (batch x max_steps); real_steps_per_s excludes "
                      f"padding ({fill:.0%} of slots are real)."}
    write_report(report, FLAGS.out or f"experiments/results/bench_model_{FLAGS.preset}.json",
                 f"preset {FLAGS.preset} (d={model.d_model}, layers={model.num_layers})")

if __name__ == "__main__":
    app.run(main)
