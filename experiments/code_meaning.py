"""Do a finished run's metacontroller codes name subgoals, or places and moves of their own layout?

Replays held-out expert episodes from their start, the steered base model choosing at its k-th
switch (i) the k-th code the metacontroller inferred for that episode, (ii) the k-th code inferred
for *another* episode of the same task (another layout, the same colours in the same order) and
(iii) codes from the N(0, I) prior; plus the per-pair injection check (``latent_codes.reach_rates``).
Codes that name subgoals reproduce the subgoal order as well under (ii) as under (i); codes that
name where to go in their own layout fall to (iii). No training: it reads ``DIR`` and redraws
``DIR/plots/latent_codes.png`` (the same figures, so the same plot as the phase's).

What the codes carry instead (``content``): linear probes (and the 10 nearest codes' vote) from
z_t to the colour the expert heads to, the expert's move a_t, the direction of that colour from
the agent (its larger axis: up, right, down, left) at t and at the segment's first step; each
against its majority figure. Codes that name places and moves of their own layout read the
direction or the move well and the colour or subgoal poorly. And the edit's form (``edit_form``):
how much of each code's edit is one fixed vector added whatever the stream holds.

    python -m experiments.code_meaning runs/gridworld_cpu [--variant=standard --alpha=0.1] [--out=FILE]
"""
from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from experiments import code_warm_start
from hrl_internal.analysis import latent_codes
from hrl_internal.models import metacontroller
from hrl_internal.training import metacontroller as meta_training
from hrl_internal.envs import gridworld
from launch import artefacts, report
from launch.phases import metacontroller as meta_phase
from launch.rundir import RunDir


def direction(frm: np.ndarray, to: np.ndarray, grid_size: int) -> np.ndarray:
    """The direction of cell ``to`` from cell ``frm`` along its larger axis, as the action that
    moves that way (``gridworld.ACTION_DELTAS``: 0 up, 1 right, 2 down, 3 left; ties: vertical)."""
    dr = to // grid_size - frm // grid_size
    dc = to % grid_size - frm % grid_size
    vertical = np.abs(dr) >= np.abs(dc)
    return np.where(vertical, np.where(dr < 0, 0, 2), np.where(dc > 0, 1, 3))


def content_labels(rows, grid_size: int) -> dict[str, tuple[np.ndarray, int]]:
    """Per-step labels ``[R, T]`` of packed rows, each with its number of classes."""
    colours = np.asarray(rows.colours, int)
    target = np.take_along_axis(np.asarray(rows.object_cells), colours[..., None], -1)[..., 0]
    toward = direction(np.asarray(rows.agent_cells), target, grid_size)
    starts = np.asarray(code_warm_start.segment_starts(rows))
    steps = np.broadcast_to(np.arange(starts.shape[-1]), starts.shape)
    first = np.maximum.accumulate(np.where(starts, steps, 0), axis=-1)
    return {"colour": (colours, int(np.asarray(rows.object_cells).shape[-1])),
            "move": (np.asarray(rows.actions, int), gridworld.NUM_ACTIONS),
            "direction": (toward, 4),
            "direction_at_segment_start": (np.take_along_axis(toward, first, -1), 4)}


def code_content(key: jax.Array, z: np.ndarray, rows, grid_size: int) -> dict[str, dict]:
    """``{label: {"probe_accuracy", "probe_knn_accuracy", "probe_majority"}}`` from z_t."""
    mask = np.asarray(rows.mask, bool)
    out = {}
    for name, (labels, classes) in content_labels(rows, grid_size).items():
        read = latent_codes.code_probe(key, z, labels, mask, num_classes=classes)
        out[name] = {k: read[k] for k in ("probe_accuracy", "probe_knn_accuracy",
                                          "probe_majority")}
    return out


def edit_form(meta_params, codes: np.ndarray, e: np.ndarray) -> dict[str, float]:
    """How much the decoded edit depends on the stream it edits: for ``codes [K, n_z]`` and
    residuals ``e [M, d]``, Δ_km = U(z_k)(e_m) (``metacontroller.edit`` minus e).
    ``constancy``: the mean over k of |mean_m Δ_km|² / mean_m |Δ_km|² (1: each code adds one
    fixed vector whatever e is; 0: an edit of what e carries, averaging out over the data);
    ``constancy_between_codes``: the same for Δ_km − mean_k Δ_km, what tells codes apart;
    ``edit_over_e``: mean |Δ| / mean |e|."""
    delta = jax.vmap(lambda z: jax.vmap(lambda x: metacontroller.edit(meta_params, z, x) - x)(
        jnp.asarray(e)))(jnp.asarray(codes))
    delta = np.asarray(delta, np.float64)

    def constancy(d):
        return float(np.mean(np.sum(d.mean(1) ** 2, -1) / np.mean(np.sum(d ** 2, -1), 1)))

    return {"constancy": constancy(delta),
            "constancy_between_codes": constancy(delta - delta.mean(0, keepdims=True)),
            "edit_over_e": float(np.linalg.norm(delta, axis=-1).mean()
                                 / np.linalg.norm(e, axis=-1).mean())}


def code_meaning(path: str, variant: str | None = None, alpha: float | None = None) -> dict:
    _, config = report.load_run(path)
    if config is None or config.env != "gridworld":
        raise SystemExit(f"code_meaning: {path} holds no gridworld run (config.json)")
    run_dir = RunDir(path)
    m = config.meta
    variant = variant or m.variants()[0]
    alpha = m.alphas()[0] if alpha is None else alpha
    base = artefacts.load_params(run_dir, config)
    params = artefacts.load_metacontroller(run_dir, config, variant, alpha)
    episodes = artefacts.load_split(run_dir, config, "eval")
    rows = artefacts.pack(episodes, artefacts.env_and_model(config)[0])
    figures, beta, z = meta_phase.score(config, params, base, rows, variant, alpha)
    checks = meta_phase.latent_code_check(config, params, base, rows, z, beta, episodes, variant,
                                          run_dir.plots_dir)
    content = code_content(jax.random.fold_in(meta_phase.meta_key(config), meta_phase.CODE_TAG),
                           z, rows, config.gridworld.grid_size)
    for name, read in content.items():
        print(f"[code_meaning] z_t reads the {name.replace('_', ' ')} {read['probe_accuracy']:.3f} "
              f"(10 nearest codes {read['probe_knn_accuracy']:.3f}, majority "
              f"{read['probe_majority']:.3f})")
    # The edits of 128 codes taken at segment starts, on 256 residuals of the same rows.
    env, model = artefacts.env_and_model(config)
    sample = jax.tree.map(lambda x: x[:64], rows)
    e = np.asarray(meta_training.acted_stream(base, sample, model=model, env=env,
                                              layer=m.layer, forget=m.meta_forget))
    mask = np.asarray(sample.mask, bool)
    starts = np.asarray(code_warm_start.segment_starts(sample)) & mask
    rng = np.random.default_rng(0)
    codes, residuals = np.asarray(z[:64])[starts], e[mask]
    form = edit_form(params["meta"], codes[rng.choice(len(codes), min(128, len(codes)), False)],
                     residuals[rng.choice(len(residuals), min(256, len(residuals)), False)])
    print(f"[code_meaning] the edit: {form['constancy']:.3f} of it a fixed vector per code, "
          f"{form['constancy_between_codes']:.3f} of what tells codes apart; |Δ|/|e| "
          f"{form['edit_over_e']:.3f}")
    keep = ("action_nll", "kl", "f1", "switches_per_episode", "hard_beta_nll")
    return {"variant": variant, "alpha": alpha, **{k: figures[k] for k in keep}, **checks,
            "content": content, "edit_form": form}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path")
    parser.add_argument("--variant", default=None)
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    figures = code_meaning(args.path, args.variant, args.alpha)
    print(json.dumps(figures, indent=1))
    if args.out:
        json.dump(figures, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
