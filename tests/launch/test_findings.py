"""The findings table: each of the paper's findings judged from a run's figures."""
import copy
import json
import os

from launch import findings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PASSING = {
    "pretrain": {"heldout_action_accuracy": 0.83, "bayes_optimal_action_accuracy": 0.84,
                 "rollout_success": 0.05},
    "probe": {"accuracy_by_layer": [0.3, 0.45, 0.6, 0.62, 0.6]},
    "steer": {"layers": [0, 1, 2, 3, 4], "posttrain_success_by_layer": [0.0, 0.1, 0.4, 0.2, 0.1],
              "colour_success_by_layer": [0.5, 0.8, 0.95, 0.9, 0.85]},
    "metacontroller": {"switch_f1": 0.95, "switches_per_episode": 2.05,
                       "true_switches_per_episode": 2.0, "latent_code_reach_matched_rate": 0.6,
                       "latent_code_reach_mismatched_rate": 0.2,
                       "action_accuracy": 0.86, "next_colour_cap_accuracy": 0.877,
                       "latent_code_replay_inferred_success": 0.4,
                       "latent_code_replay_same_task_success": 0.3,
                       "latent_code_probe_accuracy": 0.9, "latent_code_probe_majority": 0.25,
                       "sweep": [{"alpha": a, "variant": "standard", "switch_f1": f}
                                 for a, f in ((0.0, 0.3), (0.1, 0.95), (1.0, 0.0))]},
    "internal_rl": {"task": "0-1-2-3", "internal_rl.success_rate": 0.6,
                    "raw_action_rl.success_rate": 0.0, "compile.success_rate": 0.01,
                    "gt_steer_success": 0.18,
                    "subgoal_controllers.initial_success_rate": 0.05,
                    "subgoal_controllers.success_rate": 0.17},
}


def test_every_finding_holds_on_figures_that_meet_its_criterion():
    rows = findings.findings(PASSING)
    assert [name for name, *_ in findings.FINDINGS] == list(rows)
    assert all(row["holds"] is True for row in rows.values()), rows


def test_each_criterion_fails_when_its_figure_misses():
    cases = [("pretrain", "rollout_success", 0.01, "base model competence"),
             ("probe", "accuracy_by_layer", [0.6, 0.5, 0.4, 0.3, 0.3], "F1"),  # best at layer 0
             ("steer", "posttrain_success_by_layer", [0.5, 0.1, 0.1, 0.1, 0.1], "F2"),  # layer 0
             ("steer", "forget", "both", "F2"),  # --steer_forget: not the paper's setting
             ("metacontroller", "switches_per_episode", 2.5, "F3"),
             ("metacontroller", "latent_code_reach_mismatched_rate", 0.4, "codes"),
             ("metacontroller", "action_accuracy", 0.9, "codes"),  # above the next-colour cap
             ("metacontroller", "latent_code_replay_same_task_success", 0.1, "codes"),  # layout's
             ("metacontroller", "latent_code_probe_accuracy", 0.3, "codes"),  # not a read-out
             ("internal_rl", "raw_action_rl.success_rate", 0.2, "F5"),
             ("internal_rl", "compile.success_rate", 0.2, "F5"),
             ("internal_rl", "forget", "both", "F5"),  # --rl_forget: not the paper's setting
             ("internal_rl", "subgoal_controllers.success_rate", 0.1, "RL machinery")]  # < half
    for phase, name, value, finding in cases:
        results = copy.deepcopy(PASSING)
        results[phase][name] = value
        row = next(r for n, r in findings.findings(results).items() if n.startswith(finding))
        assert row["holds"] is False, (phase, name)


def test_missing_phases_are_not_measured_and_the_stored_main_job_is_judged():
    rows = findings.findings({"pretrain": PASSING["pretrain"]})
    assert rows["base model competence"]["holds"] is True
    assert sum(row["holds"] is None for row in rows.values()) == len(rows) - 1
    stored = json.load(open(os.path.join(ROOT, "experiments", "results",
                                         "gridworld_cpu_main.json")))
    table = findings.findings_table(findings.findings(stored))
    assert "base model competence" in table and "paper:" in table
    acc = stored["pretrain"]["heldout_action_accuracy"]
    assert f"held-out accuracy {acc:.3f}" in table


def test_table_keeps_the_papers_order_whatever_order_was_stored():
    rows = findings.findings(PASSING)
    shuffled = dict(sorted(rows.items()))  # a results.json written with sorted keys
    table = findings.findings_table(shuffled)
    positions = [table.index(name) for name, *_ in findings.FINDINGS]
    assert positions == sorted(positions)
