"""Phase ``probe``: linear probes from each layer's residual stream to the current subgoal (§C.2)."""
from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import configs
from hrl_internal.analysis import bayes, plots, probes
from hrl_internal.data import packing
from launch import artefacts
from launch.rundir import RunDir

PROBE_TAG = 21


def run(config: configs.Config, run_dir: RunDir) -> dict[str, Any]:
    env = config.gridworld.env_params("pretrain")
    model = config.model.transformer(env)
    a = config.analysis
    params = artefacts.load_params(run_dir, config)
    train_rows = packing.pack(artefacts.load_split(run_dir, config, "train"), env)
    # A random subset: packing orders rows by episode length, so the first rows are the longest.
    pick = np.random.default_rng(config.seed).permutation(train_rows.num_rows)[:a.probe_rows]
    train_rows = jax.tree.map(lambda x: jnp.asarray(x[pick]), train_rows)
    eval_episodes = artefacts.load_split(run_dir, config, "eval")
    test_rows = jax.tree.map(jnp.asarray, packing.pack(eval_episodes, env))
    train_data = probes.collect(params, train_rows, model, env)
    test_data = probes.collect(params, test_rows, model, env)
    print(f"[probe] {train_data.labels.shape[0]} training steps, {test_data.labels.shape[0]} "
          f"held-out steps, {model.num_layers + 1} layers")
    probe = probes.train(jax.random.fold_in(jax.random.PRNGKey(config.seed), PROBE_TAG),
                         train_data, num_classes=4, steps=a.probe_steps,
                         batch_size=a.probe_batch_size, learning_rate=a.probe_lr)
    test_acc = [float(x) for x in probes.accuracy(probe, test_data)]
    train_acc = [float(x) for x in probes.accuracy(probe, train_data)]
    baseline = probes.majority_baseline(train_data.labels, test_data.labels)
    # How much of the subgoal the history reveals at all: the Bayes posterior's accuracy.
    ceiling = bayes.scores(eval_episodes, env)
    plots.plot_by_layer({"held-out": test_acc, "train": train_acc},
                        os.path.join(run_dir.plots_dir, "probe_accuracy_by_layer.png"),
                        "subgoal probe accuracy", "linear probes: residual stream -> subgoal",
                        reference={"majority class": baseline,
                                   "Bayes-optimal (history)": ceiling["subgoal_accuracy"]})
    return {"accuracy_by_layer": test_acc, "train_accuracy_by_layer": train_acc,
            "majority_baseline": baseline,
            "bayes_optimal_subgoal_accuracy": ceiling["subgoal_accuracy"], "best_layer": int(max(range(len(test_acc)),
                                                                 key=test_acc.__getitem__))}
