"""Phase drivers, in the order a run executes them. Each is ``run(config, run_dir) -> figures``:
it writes its artefacts under ``DIR/<phase>/`` and returns the figures merged into results.json.

``PHASES`` names every phase in dependency order; ``phases_for(env)`` gives the drivers an
environment has (the ant's base model is a Hawk SSM, so its drivers differ where the model does).
"""
from launch.phases import ant_data, data, internal_rl, metacontroller, pretrain, probe, steer

PHASES = {
    "data": data.run,
    "pretrain": pretrain.run,
    "probe": probe.run,
    "steer": steer.run,
    "metacontroller": metacontroller.run,
    "internal_rl": internal_rl.run,
}

# Probing and supervised steering (phase-1 analyses) are written for the gridworld so far.
_ANT_PHASES = {
    "data": ant_data.run,
    "pretrain": pretrain.run,
    "metacontroller": metacontroller.run,
    "internal_rl": internal_rl.run,
}


def phases_for(env: str) -> dict:
    """The phase drivers of ``env`` in dependency order."""
    return PHASES if env == "gridworld" else _ANT_PHASES
