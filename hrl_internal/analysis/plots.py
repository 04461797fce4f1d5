"""Figures written by the phases (matplotlib, no display needed)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hrl_internal.envs import ant_pinpad  # noqa: E402
from hrl_internal.utils import sharding  # noqa: E402

COLOURS = ("tab:red", "tab:orange", "tab:olive", "tab:green", "tab:cyan", "tab:blue",
           "tab:purple", "tab:pink", "tab:brown", "tab:gray")


def _save(fig, path: str, dpi: int = 100) -> None:
    """Writes ``fig`` to ``path`` (process 0 only: see ``sharding.writes_files``) and closes it."""
    if sharding.writes_files():
        fig.savefig(path, dpi=dpi)
    plt.close(fig)


def _path_on_grid(episodes, i: int, steps: int, params) -> np.ndarray:
    """Episode ``i``'s positions ``[steps + 1, 2]`` as (column, row) in cell units: the gridworld's
    cells (jittered so revisits show), the ant's torso read back from its observations."""
    if hasattr(episodes, "agent_cells"):
        cells = np.asarray(episodes.agent_cells[i][: steps + 1])
        jitter = np.linspace(-0.15, 0.15, len(cells))
        return np.stack([cells % params.grid_size + jitter, cells // params.grid_size + jitter], 1)
    xy = np.asarray(episodes.obs[i][: steps + 1, ant_pinpad.observation_slices(params)["xy"]])
    half = params.side_length / 2
    xy = xy * half  # the observation holds x, y / (side / 2)
    return np.stack([(xy[:, 0] + half) / params.cell_size - 0.5,
                     (half - xy[:, 1]) / params.cell_size - 0.5], 1)


def plot_episodes(episodes, params, path: str, count: int = 4) -> None:
    """Draws the first ``count`` episodes: walls, coloured cells (numbered), the agent's path
    (gridworld: its cells; ant: its torso)."""
    g = params.grid_size
    count = min(count, len(episodes.success))
    fig, axes = plt.subplots(1, count, figsize=(3.2 * count, 3.4), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.set_xlim(-0.5, g - 0.5)
        ax.set_ylim(g - 0.5, -0.5)
        ax.set_xticks(np.arange(-0.5, g, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, g, 1), minor=True)
        ax.grid(which="minor", color="0.85")
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        for cell in episodes.wall_cells[i]:
            ax.add_patch(plt.Rectangle((cell % g - 0.5, cell // g - 0.5), 1, 1, color="0.2"))
        for colour, cell in enumerate(episodes.object_cells[i]):
            ax.add_patch(plt.Rectangle((cell % g - 0.5, cell // g - 0.5), 1, 1,
                                       color=COLOURS[colour % len(COLOURS)], alpha=0.6))
            ax.text(cell % g, cell // g, str(colour), ha="center", va="center", fontsize=11)
        steps = int(np.sum(episodes.mask[i]))
        positions = _path_on_grid(episodes, i, steps, params)
        ax.plot(positions[:, 0], positions[:, 1], "-", color="k", lw=1.2)
        ax.plot(positions[0, 0], positions[0, 1], "o", color="k", ms=8)
        task = "-".join(str(c) for c in params.tasks[int(episodes.task_id[i])])
        result = "solved" if episodes.success[i] else "failed"
        ax.set_title(f"task {task}\n{steps} steps, {result}", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def plot_curves(records: list[dict], loss_keys: list[str], accuracy_keys: list[str], path: str,
                title: str = "", references: dict[str, tuple[float, float]] | None = None
                ) -> None:
    """Loss and accuracy against step from metrics.jsonl records, side by side;
    ``references={label: (loss, accuracy)}`` draws each as a dashed line on both panels (e.g. the
    Bayes-optimal predictor's held-out NLL and accuracy)."""
    steps = [r["step"] for r in records]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (ax, keys, label) in enumerate(((axes[0], loss_keys, "loss"),
                                           (axes[1], accuracy_keys, "accuracy"))):
        for key in keys:
            ax.plot(steps, [r.get(key, np.nan) for r in records], label=key)
        for ref_label, values in (references or {}).items():
            ax.axhline(values[i], ls="--", color="0.4", lw=1, label=ref_label)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def plot_by_layer(values: dict[str, list[float]], path: str, ylabel: str, title: str,
                  reference: dict[str, float] | None = None,
                  layers: list[int] | None = None) -> None:
    """One line per entry of ``values`` against layer index (0 = embedding); ``layers`` names
    the layer of each value (default: 0, 1, ...)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, ys in values.items():
        ax.plot(layers if layers is not None else range(len(ys)), ys, "o-", label=label)
    x0 = min(layers) if layers else 0
    for label, y in (reference or {}).items():
        ax.axhline(y, ls="--", color="0.5", lw=1)
        ax.text(x0, y, f" {label}", va="bottom", fontsize=8, color="0.3")
    ax.set_xlabel("layer (0 = embedding)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_switching(beta: np.ndarray, subgoals: np.ndarray, mask: np.ndarray, path: str,
                   title: str = "", threshold: float = 0.5) -> None:
    """β_t over time for a few episodes (one panel each), the true subgoal as coloured bands.

    Args: ``beta, subgoals, mask`` each ``[episodes, T]`` (one episode per row, from step 0).
    """
    count = beta.shape[0]
    fig, axes = plt.subplots(count, 1, figsize=(8, 1.5 * count + 0.6), squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        steps = int(np.sum(mask[i]))
        for t in range(steps):
            ax.axvspan(t - 0.5, t + 0.5, color=COLOURS[int(subgoals[i, t]) % len(COLOURS)],
                       alpha=0.25, lw=0)
        ax.plot(range(steps), beta[i, :steps], "k.-", lw=1)
        ax.axhline(threshold, ls="--", color="0.5", lw=0.8)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlim(-0.5, max(steps, 1) - 0.5)
        ax.set_ylabel("β")
    axes[-1, 0].set_xlabel("step (background: true subgoal)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


# Switches count as aligned with the subgoal boundaries at this F1 (launch.findings' criterion).
ALIGNED_F1 = 0.9


def plot_rate_distortion(points: list[dict], path: str) -> None:
    """NLL (distortion) against KL (rate, symlog: the rates span 1e-5 to tens of nats), one line
    per variant over α; points whose switches align with subgoal boundaries (switch F1 ≥ 0.9, the
    findings' criterion) are filled, and each is labelled with α and its F1."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, variant in enumerate(sorted({p["variant"] for p in points})):
        mine = sorted((p for p in points if p["variant"] == variant), key=lambda p: p["kl"])
        colour = COLOURS[i % len(COLOURS)]
        ax.plot([p["kl"] for p in mine], [p["nll"] for p in mine], "-", color=colour,
                label=variant)
        for p in mine:
            aligned = p["switch_f1"] >= ALIGNED_F1
            ax.plot(p["kl"], p["nll"], "o", color=colour, mfc=colour if aligned else "white")
            ax.annotate(f"α={p['alpha']:g} F1 {p['switch_f1']:.2f}", (p["kl"], p["nll"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
    finish_rate_distortion(fig, ax, f"rate-distortion over α (filled: switch F1 ≥ "
                           f"{ALIGNED_F1:g})", path)


def finish_rate_distortion(fig, ax, title: str, path: str, title_size: int = 10,
                           legend_size: int = 8) -> None:
    """The axes every rate-distortion figure shares (KL on a symlog x axis, NLL on y), then
    written to ``path`` like every figure here (``_save``)."""
    ax.set_xscale("symlog", linthresh=1e-2)
    ax.set_xlabel("rate: KL per step (nats, symlog)")
    ax.set_ylabel("distortion: action NLL per step")
    ax.set_title(title, fontsize=title_size)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    _save(fig, path)


def plot_rl_curves(curves: dict[str, dict[str, list[float]]], path: str, title: str) -> None:
    """Success against episodes per seed, one line per method (mean; band: min-max over seeds),
    on linear axes and on log axes (where rare early successes show)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, c) in enumerate(curves.items()):
        if not c["episodes"]:
            continue
        x = np.asarray(c["episodes"])
        for ax in axes:
            ax.plot(x, c["success"], color=COLOURS[i % len(COLOURS)], label=name)
            ax.fill_between(x, c["success_min"], c["success_max"],
                            color=COLOURS[i % len(COLOURS)], alpha=0.2)
    axes[0].set_ylim(0, 1)
    axes[1].set_xscale("log")
    axes[1].set_yscale("symlog", linthresh=1e-4)
    axes[1].set_ylim(0, 1)
    for ax in axes:
        ax.set_xlabel("episodes (per seed)")
        ax.set_ylabel("success rate")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path, dpi=110)


def plot_code_rates(code_rates: np.ndarray, prior_rates: np.ndarray, path: str) -> None:
    """Reach rate of each colour pair (columns) under each collected code (rows) and under prior
    codes (last row): the latent-code check."""
    table = np.vstack([code_rates, prior_rates[None]])
    k = code_rates.shape[0]
    fig, ax = plt.subplots(figsize=(5, 4.2))
    image = ax.imshow(table, cmap="viridis", vmin=0.0)
    for (i, j), value in np.ndenumerate(table):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="w", fontsize=9)
    ax.set_xticks(range(k), [f"{2 * j}-{2 * j + 1}" for j in range(k)])
    ax.set_yticks(range(k + 1), [f"code for {2 * i}-{2 * i + 1}" for i in range(k)] + ["prior N(0, I)"])
    ax.set_xlabel("task: reach this pair")
    ax.set_title("codes injected at every switch", fontsize=10)
    fig.colorbar(image, ax=ax, label="reach rate")
    fig.tight_layout()
    _save(fig, path)
