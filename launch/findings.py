"""The paper's findings, checked against a run's figures: one row each, with the paper's figure,
this run's, and whether it holds by a stated criterion (``None``: not measured by this run).

A pure function of ``results.json``; the launcher stores its rows as ``results["findings"]`` and
prints them after the results table, and ``launch.report`` prints them again. The criteria are the
targets of the project's findings issues (base model, subgoal codes, internal RL), for the
gridworld.
"""
from __future__ import annotations

from typing import Any, Callable

from hrl_internal.analysis import plots

# name -> (the paper's figure, this run's figure as text and whether it holds; None if unmeasured)
Check = Callable[[dict[str, Any]], "tuple[str, bool] | None"]


def _get(results: dict[str, Any], phase: str, name: str) -> Any:
    return results.get(phase, {}).get(name)


def _base(r: dict[str, Any]) -> tuple[str, bool] | None:
    acc, bayes = _get(r, "pretrain", "heldout_action_accuracy"), _get(
        r, "pretrain", "bayes_optimal_action_accuracy")
    success = _get(r, "pretrain", "rollout_success")
    if acc is None or bayes is None or success is None:
        return None
    text = (f"held-out accuracy {acc:.3f} (Bayes-optimal {bayes:.3f}); acting alone success "
            f"{success:.3f} (a perfect imitator 0.0625)")
    return text, acc >= 0.82 and success >= 0.045


def _probes(r: dict[str, Any]) -> tuple[str, bool] | None:
    acc = _get(r, "probe", "accuracy_by_layer")
    if not acc:
        return None
    best = max(range(len(acc)), key=acc.__getitem__)
    text = "by layer " + ", ".join(f"{a:.2f}" for a in acc) + f" (best layer {best})"
    return text, best >= 1 and acc[best] >= acc[0] + 0.15


def _steering(r: dict[str, Any]) -> tuple[str, bool] | None:
    success = _get(r, "steer", "posttrain_success_by_layer")
    colour = _get(r, "steer", "colour_success_by_layer")
    layers = _get(r, "steer", "layers")
    if not success or not layers:
        return None
    best = max(range(len(success)), key=success.__getitem__)
    depth = max(layers)
    middle = depth / 3 <= layers[best] <= 2 * depth / 3
    text = ("post-training success by layer " + ", ".join(f"{s:.3f}" for s in success)
            + (f"; colours reached per colour attempted, best {max(colour):.2f}" if colour else ""))
    forget = _get(r, "steer", "forget") or "none"
    if forget != "none":  # --steer_forget: not the paper's setting, so not its finding
        text = f"the history forgotten at each subgoal (--steer_forget={forget}, not the " \
               f"paper's): {text}"
    return text, (success[best] >= 0.3 and middle and bool(colour) and max(colour) >= 0.9
                  and forget == "none")


def _switching(r: dict[str, Any]) -> tuple[str, bool] | None:
    f1 = _get(r, "metacontroller", "switch_f1")
    per_episode = _get(r, "metacontroller", "switches_per_episode")
    true = _get(r, "metacontroller", "true_switches_per_episode")
    if f1 is None or per_episode is None or not true:
        return None
    text = f"switch F1 {f1:.2f} (±2 steps), {per_episode:.2f} switches per episode (true {true:.2f})"
    return text, f1 >= plots.ALIGNED_F1 and abs(per_episode - true) <= 0.1 * true


def _codes(r: dict[str, Any]) -> tuple[str, bool] | None:
    own = _get(r, "metacontroller", "latent_code_reach_matched_rate")
    other = _get(r, "metacontroller", "latent_code_reach_mismatched_rate")
    if own is None or other is None:
        return None
    text = f"a pair reached under its own code {own:.3f}, under another pair's {other:.3f}"
    acc = _get(r, "metacontroller", "action_accuracy")
    cap = _get(r, "metacontroller", "next_colour_cap_accuracy")
    below_cap = True
    if acc is not None and cap is not None:
        # Above the next-colour cap the codes carry moves (the expert's tie-breaks), not subgoals.
        below_cap = acc <= cap
        text += f"; held-out accuracy {acc:.3f} (next-colour cap {cap:.3f})"
    own_replay = _get(r, "metacontroller", "latent_code_replay_inferred_success")
    partner = _get(r, "metacontroller", "latent_code_replay_same_task_success")
    portable = True
    if own_replay is not None and partner is not None:
        # Codes that name subgoals mean the same in another layout of the same task; codes that
        # name places or moves of their own layout do not.
        portable = partner >= 0.5 * own_replay
        text += (f"; an episode replayed with its own codes {own_replay:.3f}, with another "
                 f"episode's of the same task {partner:.3f}")
    probe = _get(r, "metacontroller", "latent_code_probe_accuracy")
    majority = _get(r, "metacontroller", "latent_code_probe_majority")
    knn = _get(r, "metacontroller", "latent_code_probe_knn_accuracy")
    encoded = True
    if probe is not None and majority is not None:
        # The encoder sees the whole episode: codes that name subgoals make the subgoal a
        # read-out of z_t (linear, or by the nearest codes' vote).
        encoded = max(probe, knn or 0.0) >= 0.8
        text += f"; a linear probe reads the subgoal from z_t {probe:.3f}"
        if knn is not None:
            text += f", the 10 nearest codes' vote {knn:.3f}"
        text += f" (majority {majority:.3f})"
    return text, own >= 0.5 and own >= 2 * other and below_cap and portable and encoded


def _rate_distortion(r: dict[str, Any]) -> tuple[str, bool] | None:
    sweep = _get(r, "metacontroller", "sweep") or []
    alphas = sorted({row["alpha"] for row in sweep if row.get("variant") == "standard"})
    if len(alphas) < 3:
        return None
    rows = [row for row in sweep if row.get("variant") == "standard"]
    aligned = [row["alpha"] for row in rows if row.get("switch_f1", 0) >= plots.ALIGNED_F1]
    text = (f"{len(alphas)} values of α; subgoal-aligned switching (F1 >= {plots.ALIGNED_F1:g}) "
            "at α "
            + (", ".join(f"{a:g}" for a in aligned) or "none"))
    return text, bool(aligned) and len(aligned) < len(alphas)


def _internal_rl(r: dict[str, Any]) -> tuple[str, bool] | None:
    internal = _get(r, "internal_rl", "internal_rl.success_rate")
    raw = _get(r, "internal_rl", "raw_action_rl.success_rate")
    if internal is None or raw is None:
        return None
    task = _get(r, "internal_rl", "task")
    text = f"task {task}: internal RL {internal:.3f}, raw-action RL {raw:.3f}"
    compile_rate = _get(r, "internal_rl", "compile.success_rate")
    if compile_rate is not None:
        text += f", CompILE {compile_rate:.3f}"
    baselines_fail = raw <= 0.05 and (compile_rate is None or compile_rate <= 0.05)
    forget = _get(r, "internal_rl", "forget") or "none"
    if forget != "none":  # --rl_forget: not the paper's setting, so not its finding
        text = f"the history forgotten at each switch (--rl_forget={forget}, not the paper's): " \
               f"{text}"
    return text, internal >= 0.5 and baselines_fail and forget == "none"


def _known_answer(r: dict[str, Any]) -> tuple[str, bool] | None:
    known = _get(r, "internal_rl", "subgoal_controllers.success_rate")
    ceiling = _get(r, "internal_rl", "gt_steer_success")
    if known is None or ceiling is None:
        return None
    initial = _get(r, "internal_rl", "subgoal_controllers.initial_success_rate")
    text = (f"codes through the supervised controllers: {initial:.3f} -> {known:.3f}, against "
            f"{ceiling:.3f} for the ground-truth-switched controllers")
    forget = _get(r, "internal_rl", "forget") or "none"
    if forget != "none":  # a reference either way; say which regime it was measured in
        text += f" (both forgetting the history at each switch, --rl_forget={forget})"
    # Closing half the gap from random codes to the best policy: a learner that works, within
    # the main job's budget (its full climb takes longer; README).
    return text, known - initial >= 0.5 * (ceiling - initial) and ceiling > initial


# (finding, the paper's figure, criterion, check)
FINDINGS: tuple[tuple[str, str, str, Check], ...] = (
    ("base model competence", "near-expert imitation (needed by everything below)",
     "held-out accuracy >= 0.82 and acting-alone success >= 0.045", _base),
    ("F1 probes: the subgoal is linearly decodable mid-depth", "~0.3 rising to ~0.5 at mid-depth",
     "best layer >= 1 and >= layer 0 + 0.15", _probes),
    ("F2 steering: low-rank subgoal controllers solve the post-training task",
     "success 0.2-0.7, best near mid-depth",
     "success >= 0.3 at a middle-third layer, >= 0.9 of attempted colours reached", _steering),
    ("F3 switching: β switches at subgoal changes", "quasi-binary, sparse, aligned (Fig. 6)",
     "switch F1 >= 0.9, switches per episode within 10% of the true count", _switching),
    ("codes name subgoals", "injected code raises reaching its subgoal 23% -> 36% (ant)",
     "own-code reach >= 0.5 and >= 2x another pair's; another layout's codes of the same task "
     "replay >= half as well; the subgoal read from the codes (linear probe or nearest codes) >= 0.8",
     _codes),
    ("F4 rate-distortion: subgoal-aligned switching in an α range",
     "a gap in NLL vs KL where aligned switching sets in (Fig. 7)",
     "some but not all α switch with F1 >= 0.9 (>= 3 values of α)", _rate_distortion),
    ("RL machinery on a known answer: internal RL finds the right codes",
     "(not in the paper: a reference that the RL learner works)",
     "closes >= half the gap from its initial success to the ground-truth-switched controllers'",
     _known_answer),
    ("F5 internal RL learns where raw-action RL does not",
     "internal RL high success; raw-action RL and CompILE fail within 1e6 episodes (Fig. 8)",
     "internal RL >= 0.5, raw-action RL and CompILE (where run) <= 0.05", _internal_rl),
)


def findings(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{finding: {paper, this_run, criterion, holds}}``; ``holds`` is None where this run did
    not measure the figures the criterion needs."""
    out = {}
    for name, paper, criterion, check in FINDINGS:
        measured = check(results)
        out[name] = {"paper": paper, "criterion": criterion,
                     "this_run": measured[0] if measured else "not measured",
                     "holds": bool(measured[1]) if measured else None}
    return out


def findings_table(rows: dict[str, dict[str, Any]]) -> str:
    """The findings as text: one block per finding, its verdict first."""
    verdict = {True: "holds", False: "NOT YET", None: "not measured"}
    lines = ["findings (criteria: launch/findings.py)"]
    # The paper's order, whatever order a stored results.json kept.
    known = [name for name, *_ in FINDINGS]
    order = [n for n in known if n in rows] + [n for n in rows if n not in known]
    for name in order:
        row = rows[name]
        lines.append(f"  [{verdict[row['holds']]:>12}] {name}")
        lines.append(f"                 paper: {row['paper']}")
        lines.append(f"                 here:  {row['this_run']}")
    return "\n".join(lines)
