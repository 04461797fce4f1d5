"""``python -m launch.report DIR``: the results table of a run and its plots, regenerated from what
the run stored (results.json, config.json, metrics.jsonl, data/train.npz), with no training.

Plots go to ``DIR/plots/`` under the names the phases give them. What needs arrays a run does not
store (β per step of held-out episodes) is named, with the command that remakes it. On a sweep's
directory (``DIR/sweep.json``) it re-summarises the sweep instead (``launch.sweep``).
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

import numpy as np

from experiments import configs
from hrl_internal.analysis import plots
from hrl_internal.data import dataset
from hrl_internal.utils.metrics import MetricsWriter
from launch import findings
from launch import rundir
from launch import sweep
from launch.main import results_table
from launch.phases import internal_rl as internal_rl_phase
from launch.phases import pretrain as pretrain_phase
from launch.phases import steer as steer_phase

EXIT_BAD_INPUT = 2
USAGE = "usage: python -m launch.report DIR  (a launch.main run directory, or a sweep's)"


class ReportError(Exception):
    """Nothing to report on: one line on stderr, exit code 2."""


def load_run(path: str) -> tuple[dict[str, dict[str, Any]], configs.Config | None]:
    """``(results, config)`` of the run in ``path``; config is None without a config.json."""
    if not os.path.isdir(path):
        raise ReportError(f"{path}: no such directory")
    results_path = os.path.join(path, "results.json")
    if not os.path.exists(results_path):
        raise ReportError(f"{path} holds no results.json: no phase has finished there (run "
                          f"python -m launch.main --workdir={path} first)")
    results = rundir.read_json(results_path)
    if not results:
        raise ReportError(f"{results_path} is empty: no phase has finished there")
    config_path = os.path.join(path, "config.json")
    if not os.path.exists(config_path):
        return results, None
    return results, configs.from_dict(rundir.read_json(config_path))


# Each plot maker: (run, results, config, plots_dir) -> a note when it cannot make its plot(s),
# else the list of files written.
Maker = Callable[[rundir.RunDir, dict, Any, str], "list[str] | str"]


def data_episodes(run: rundir.RunDir, results: dict, config: Any, out: str) -> list[str] | str:
    path = os.path.join(run.path, "data", "train.npz")
    if config is None or not os.path.exists(path):
        return "needs data/train.npz and config.json"
    params = config.gridworld.env_params("pretrain")
    episodes, _ = dataset.load(path, params)
    target = os.path.join(out, "data_episodes.png")
    plots.plot_episodes(episodes, params, target)
    return [target]


def pretrain_curves(run: rundir.RunDir, results: dict, config: Any, out: str) -> list[str] | str:
    records = MetricsWriter(os.path.join(run.path, "pretrain", "metrics.jsonl")).read()
    if not records:
        return "needs pretrain/metrics.jsonl"
    title = "pretraining"
    if config is not None:
        title += f" ({config.model.num_layers} layers, d={config.model.d_model})"
    target = os.path.join(out, "pretrain_curves.png")
    plots.plot_curves(records, ["loss", "heldout_action_nll"],
                      ["action_accuracy", "heldout_action_accuracy"], target, title=title,
                      references=pretrain_phase.bayes_reference(results.get("pretrain", {})))
    return [target]


def probe_by_layer(run: rundir.RunDir, results: dict, config: Any, out: str) -> list[str] | str:
    probe = results.get("probe", {})
    if "accuracy_by_layer" not in probe:
        return "needs the probe phase's results"
    reference = {label: probe[key] for label, key in
                 (("majority class", "majority_baseline"),
                  ("Bayes-optimal (history)", "bayes_optimal_subgoal_accuracy")) if key in probe}
    values = {"held-out": probe["accuracy_by_layer"]}
    if "train_accuracy_by_layer" in probe:
        values["train"] = probe["train_accuracy_by_layer"]
    target = os.path.join(out, "probe_accuracy_by_layer.png")
    plots.plot_by_layer(values, target, "subgoal probe accuracy",
                        "linear probes: residual stream -> subgoal", reference=reference)
    return [target]


def steer_by_layer(run: rundir.RunDir, results: dict, config: Any, out: str) -> list[str] | str:
    steer = results.get("steer", {})
    if "posttrain_success_by_layer" not in steer:
        return "needs the steer phase's results"
    return steer_phase.plot(steer, out,
                            results.get("pretrain", {}).get("bayes_optimal_action_nll"))


def rate_distortion(run: rundir.RunDir, results: dict, config: Any, out: str) -> list[str] | str:
    points = results.get("metacontroller", {}).get("sweep")
    if not points:
        return "needs the metacontroller phase's results"
    target = os.path.join(out, "rate_distortion.png")
    plots.plot_rate_distortion(points, target)
    return [target]


def latent_codes(run: rundir.RunDir, results: dict, config: Any, out: str) -> list[str] | str:
    meta = results.get("metacontroller", {})
    keys = ("latent_code_reach_code_rates", "latent_code_reach_prior_rates")
    if not all(k in meta for k in keys):
        return "needs the metacontroller phase's latent-code check"
    target = os.path.join(out, "latent_codes.png")
    plots.plot_code_rates(np.asarray(meta[keys[0]]), np.asarray(meta[keys[1]]), target)
    return [target]


def rl_curves(run: rundir.RunDir, results: dict, config: Any, out: str) -> list[str] | str:
    """From each method's metrics.jsonl (band: min-max over seeds, as the phase draws it); from
    results.json's mean curve where the metrics file is gone."""
    rl = results.get("internal_rl", {})
    methods = [k[: -len(".curve")] for k in rl if k.endswith(".curve")]
    if not methods:
        return "needs the internal_rl phase's results"
    seeds = int(rl.get("seeds", 1))
    curves = {}
    for name in methods:
        if os.path.exists(os.path.join(run.path, "internal_rl", name, "metrics.jsonl")):
            curves[name] = internal_rl_phase.curve(run, name, seeds)
        else:
            pairs = rl[f"{name}.curve"]  # [episodes per seed, mean success] per update
            success = [s for _, s in pairs]
            curves[name] = {"episodes": [e for e, _ in pairs], "success": success,
                            "success_min": success, "success_max": success}
    target = os.path.join(out, "internal_rl_success.png")
    plots.plot_rl_curves(curves, target, title=f"task {rl.get('task', '?')}: success per update "
                                               f"({seeds} seeds)")
    return [target]


MAKERS: dict[str, Maker] = {
    "data_episodes.png": data_episodes,
    "pretrain_curves.png": pretrain_curves,
    "probe_accuracy_by_layer.png": probe_by_layer,
    "steer_success_by_layer.png": steer_by_layer,
    "rate_distortion.png": rate_distortion,
    "latent_codes.png": latent_codes,
    "internal_rl_success.png": rl_curves,
}
# Plots of arrays a run does not store, and how to remake them (the checkpoints are reused).
NOT_STORED = {
    "beta_<variant>_a<alpha>.png": "β per step is not stored; rerun --phases=metacontroller "
                                   "--force (restores the trained metacontrollers, rescores them)",
}


def regenerate(path: str, results: dict, config: Any) -> tuple[list[str], dict[str, str]]:
    """Makes every plot the stored artefacts allow; ``(files written, {plot: why not})``."""
    run = rundir.RunDir(path)
    made, missing = [], {}
    for name, maker in MAKERS.items():
        outcome = maker(run, results, config, run.plots_dir)
        if isinstance(outcome, str):
            missing[name] = outcome
        else:
            made += outcome
    if "metacontroller" in results:
        missing.update(NOT_STORED)
    return made, missing


def report(path: str) -> str:
    """The text ``launch.report`` prints for a run directory (after writing its plots)."""
    results, config = load_run(path)
    made, missing = regenerate(path, results, config)
    lines = [f"run: {os.path.abspath(path)}", "", results_table(results), "",
             findings.findings_table(findings.findings(results)), "",
             f"plots regenerated in {os.path.join(os.path.abspath(path), 'plots')}/:"]
    lines += [f"  {os.path.basename(p)}" for p in made] or ["  (none)"]
    if missing:
        lines.append("not regenerated:")
        lines += [f"  {name}: {why}" for name, why in missing.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = argv[1:]
    if args in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if len(args) != 1 or args[0].startswith("-"):
        print(f"error: {USAGE}", file=sys.stderr)
        return EXIT_BAD_INPUT
    path = args[0]
    try:
        if os.path.exists(os.path.join(path, sweep.MANIFEST)) and not os.path.exists(
                os.path.join(path, "results.json")):
            print(sweep.markdown(sweep.summarize(path)))
            return 0
        print(report(path))
    except (ReportError, sweep.SweepError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
