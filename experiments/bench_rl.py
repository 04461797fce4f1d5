"""Benchmark: metacontroller training steps/s and internal-RL / raw-action-RL throughput.

    python -m experiments.bench_rl --preset=cpu --out=experiments/results/bench_rl_cpu.json

Sizes come from ``--preset``; the models are freshly initialised (speed does not depend on
training, except through episode lengths, which are reported). Each row is timed after a
warm-up call (compile seconds reported separately), best of ``--repeats``. Env steps count only
steps of running episodes; ticks count every slot-step the batch computed.
"""
from __future__ import annotations

import dataclasses
import jax
import jax.numpy as jnp
from absl import app, flags, logging

from experiments import configs
from experiments.timing import device_info, time_call, write_report
from hrl_internal.data import dataset, packing
from hrl_internal.models import metacontroller, transformer
from hrl_internal.rl import internal_env, internal_rl, policy, raw_action, train
from hrl_internal.training import metacontroller as meta_training

flags.DEFINE_string("preset", "cpu", "model and batch sizes from this preset")
flags.DEFINE_string("out", None, "JSON path (default experiments/results/bench_rl_<preset>.json)")
flags.DEFINE_list("slots", ["1", "256", "4096"], "environments stepped together")
flags.DEFINE_integer("start_ticks", 20, "ticks during which slots start new episodes")
flags.DEFINE_integer("meta_steps", 5, "metacontroller training steps per timed call")
flags.DEFINE_integer("repeats", 2, "timed runs per row (the best is reported)")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    config = configs.preset(FLAGS.preset)
    env = config.gridworld.env_params("pretrain")
    model = config.model.transformer(env)
    m, r = config.meta, config.rl
    base = transformer.init(jax.random.PRNGKey(0), model)
    meta = m.module(model.d_model)
    out = []

    episodes = dataset.to_numpy(dataset.generate(jax.random.split(jax.random.PRNGKey(1), 1024), env))
    rows = jax.tree.map(jnp.asarray, packing.pack(episodes, env))
    hyper = m.hyper(m.alphas()[0], "standard")
    state = meta_training.init_state(jax.random.PRNGKey(2), meta, model, hyper)
    fn = lambda: meta_training.train_steps(state, base, rows, jax.random.PRNGKey(3), model=model,
                                           meta=meta, env=env, layer=m.layer, hyper=hyper,
                                           num_steps=FLAGS.meta_steps)[1]
    compile_s, seconds = time_call(fn, repeats=FLAGS.repeats)
    out.append({"row": "metacontroller_train", "batch": hyper.batch_size,
                "per_s": FLAGS.meta_steps / seconds, "unit": "steps/s", "compile_s": compile_s})

    rl_env = dataclasses.replace(config.gridworld.env_params(r.rl_task), max_steps=r.rl_max_steps)
    frozen = internal_env.Frozen(base, metacontroller.init(jax.random.PRNGKey(4), meta))
    env_spec = internal_env.InternalEnvSpec(model, meta, rl_env, m.layer, m.beta_threshold)
    rl_hyper = train.RLHyper(learning_rate=r.rl_lr, update_epochs=r.rl_update_epochs)
    for n in map(int, FLAGS.slots):
        slots = dict(num_slots=n, start_ticks=FLAGS.start_ticks,
                     max_episodes=max(1, FLAGS.start_ticks // 4))
        specs = {
            "internal_rl": (internal_rl.InternalRLSpec(
                env_spec, policy.PolicyConfig(model.d_model, meta.latent_dim, r.policy_width),
                **slots), "codes", frozen),
            "raw_action_rl": (raw_action.RawActionSpec(model, rl_env, **slots), "actions", None),
        }
        for name, (spec, learner, fz) in specs.items():
            params = (internal_rl.init_params(jax.random.PRNGKey(5), spec) if learner == "codes"
                      else base)
            module = train.LEARNERS[learner]
            roll = jax.jit(lambda p, k: module.rollout(p, fz, k, spec)[1])
            compile_s, seconds = time_call(roll, params, jax.random.PRNGKey(6),
                                           repeats=FLAGS.repeats)
            stats = roll(params, jax.random.PRNGKey(6))  # compiled: the episodes just timed
            ticks = n * spec.num_ticks
            out.append({"row": f"{name}_rollout", "batch": n, "unit": "env steps/s",
                        "per_s": float(stats.env_steps) / seconds, "ticks_per_s": ticks / seconds,
                        "episodes_per_s": float(stats.episodes) / seconds,
                        "env_steps_per_decision": float(stats.env_steps)
                        / max(float(stats.decisions), 1.0),
                        "compile_s": compile_s})
            if n == 256:
                st = jax.tree.map(lambda x: x[None], train.init_state(params, rl_hyper))
                upd = lambda: train.train_steps(st, fz, jax.random.PRNGKey(7)[None],
                                                learner=learner, spec=spec, hyper=rl_hyper,
                                                num_steps=1)[1]
                compile_s, seconds = time_call(upd, repeats=FLAGS.repeats)
                out.append({"row": f"{name}_update", "batch": n, "unit": "updates/s",
                            "per_s": 1.0 / seconds, "compile_s": compile_s})
    report = {**device_info(), "preset": FLAGS.preset, "start_ticks": FLAGS.start_ticks,
              "rows": out}
    write_report(report, FLAGS.out or f"experiments/results/bench_rl_{FLAGS.preset}.json",
                 f"preset {FLAGS.preset}")

if __name__ == "__main__":
    app.run(main)
