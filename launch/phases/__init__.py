"""Phase drivers, in the order a run executes them. Each is ``run(config, run_dir) -> figures``:
it writes its artefacts under ``DIR/<phase>/`` and returns the figures merged into results.json."""
from launch.phases import data, internal_rl, metacontroller, pretrain, probe, steer

PHASES = {
    "data": data.run,
    "pretrain": pretrain.run,
    "probe": probe.run,
    "steer": steer.run,
    "metacontroller": metacontroller.run,
    "internal_rl": internal_rl.run,
}
