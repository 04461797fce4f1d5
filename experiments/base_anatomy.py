"""Where does a finished run's base model lose to the Bayes-optimal predictor: task inference or
navigation?

Scores the base on held-out expert episodes against two references that cannot lie
(``analysis.bayes``): the Bayes-optimal predictor (knows the expert and the task set, not the task)
and the next-colour reference (knows the task, hence the next colour, not the expert's tie-break).
Steps are split by whether the next colour is *knowable*: where the Bayes predictive equals the
next-colour reference, the history already fixes the next colour, and any excess NLL there is the
model's own (inferring what the history says, or navigating to it). Also reports, on knowable steps,
where the probability mass off the shortest moves goes: bumping (a no-op move), entering another
colour (ends the episode), or a safe detour. With ``--steer_layer=L`` the base is steered at
layer L by the steer phase's supervised controller of each step's true subgoal: where does a
written subgoal help, and where does the edit cost? It then acts on the post-training task under
ground-truth switching (the steer phase's episodes and key; sampled as there, and greedy), and
says where episodes fail: at a pair's first colour (a new subgoal written) or its second, by a
wrong colour or the time limit. No training; nothing is written to the run.

    python -m experiments.base_anatomy runs/gridworld_cpu [--episodes=1000] [--steer_layer=2]
        [--out=FILE]
"""
from __future__ import annotations

import argparse
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np

from hrl_internal.analysis import bayes, rollout, steering
from hrl_internal.data import dataset, expert
from hrl_internal.envs import gridworld
from hrl_internal.models import intervention, transformer
from launch import artefacts, report
from launch.phases import steer as steer_phase
from launch.rundir import RunDir

# L1 distance under which the Bayes predictive counts as the next-colour reference's: the
# posterior has settled on tasks that agree on the next colour.
KNOWN_TOLERANCE = 0.02
CHUNK = 100  # episodes per forward pass


def _move_kinds(agent_cells, actions, object_cells, wall_cells, task_id, env):
    """Per step ``[T, A]``: shortest, no-op (bump), entering another colour; for the true task."""
    state = gridworld.layout_state(agent_cells[0], object_cells, wall_cells, task_id, env)

    def one_step(state, action):
        values = expert.action_values(state, env)
        cells = expert._next_cells(state, env)
        colour = state.task[jnp.minimum(state.progress, state.task.shape[0] - 1)]
        target = state.object_cells[jnp.maximum(colour, 0)]
        stays = cells == state.agent_cell
        enters = gridworld.blocked_cells(state, colour, env)[cells] & (cells != target) & ~stays
        shortest = values == jnp.min(values)
        return gridworld.step(state, action, env)[1], (shortest, stays, enters)

    return jax.lax.scan(one_step, state, actions)[1]


@functools.partial(jax.jit, static_argnums=5)
def move_kinds(agent_cells, actions, object_cells, wall_cells, task_id, env):
    return jax.vmap(_move_kinds, in_axes=(0, 0, 0, 0, 0, None))(
        agent_cells, actions, object_cells, wall_cells, task_id, env)


def anatomy(path: str, num_episodes: int = 1_000, steer_layer: int | None = None) -> dict:
    _, config = report.load_run(path)
    if config is None or config.env != "gridworld":
        raise SystemExit(f"base_anatomy: {path} holds no gridworld run (config.json)")
    run = RunDir(path)
    env, model = artefacts.env_and_model(config)
    params = artefacts.load_params(run, config)
    episodes = artefacts.load_split(run, config, "eval")
    episodes = dataset.take(episodes, np.arange(min(num_episodes, episodes.num_episodes)))
    n = episodes.num_episodes

    controllers = (None if steer_layer is None
                   else artefacts.load_controllers(run, config, steer_layer))

    @jax.jit
    def log_probs(obs, subgoals):
        if controllers is None:
            outputs, _ = transformer.apply(params, obs, model)
        else:
            steer = intervention.subgoal_controller(controllers, subgoals)
            outputs, _ = transformer.apply(params, obs, model, controller=lambda e, t: steer(e),
                                           layer=steer_layer)
        return jax.nn.log_softmax(outputs["action_logits"])

    obs = dataset.observations(episodes, env)[:, :-1]
    subgoals = jnp.asarray(episodes.subgoals, jnp.int32)
    model_lp = np.concatenate([np.asarray(log_probs(obs[i:i + CHUNK], subgoals[i:i + CHUNK]))
                               for i in range(0, n, CHUNK)])
    bayes_p = np.asarray(bayes.reference(episodes, env).action_probs)
    colour_p = np.asarray(bayes.next_colour_probs(episodes, env))
    shortest, stays, enters = map(np.asarray, move_kinds(
        *(jnp.asarray(x, jnp.int32) for x in (episodes.agent_cells, episodes.actions,
                                              episodes.object_cells, episodes.wall_cells,
                                              episodes.task_id)), env))
    a = np.asarray(episodes.actions)[..., None]
    real = np.asarray(episodes.mask, bool)
    known = np.abs(bayes_p - colour_p).sum(-1) < KNOWN_TOLERANCE
    second = np.asarray(episodes.task_index) % gridworld.COLOURS_PER_SUBGOAL == 1
    nll = {"model": -np.take_along_axis(model_lp, a, -1)[..., 0],
           "bayes": -np.log(np.take_along_axis(bayes_p, a, -1)[..., 0]),
           "next_colour": -np.log(np.take_along_axis(colour_p, a, -1)[..., 0])}
    p = np.exp(model_lp)
    on_shortest = (p * shortest).sum(-1)
    argmax_shortest = np.take_along_axis(shortest, model_lp.argmax(-1)[..., None], -1)[..., 0]
    detour = ~shortest & ~stays & ~enters
    splits = {"all": real, "next colour knowable": real & known,
              "knowable, 1st colour of a pair": real & known & ~second,
              "knowable, 2nd colour of a pair": real & known & second,
              "not knowable": real & ~known}
    out: dict = {"run": path, "episodes": n, "steps": int(real.sum()), "steer_layer": steer_layer}
    for name, sel in splits.items():
        out[name] = {"fraction_of_steps": float(sel.sum() / real.sum()),
                     **{f"{k}_nll": float(v[sel].mean()) for k, v in nll.items()},
                     "model_argmax_shortest": float(argmax_shortest[sel].mean()),
                     "model_mass_on_shortest": float(on_shortest[sel].mean())}
    sel = real & known
    out["knowable steps, mass off the shortest moves"] = {
        "bump (no-op)": float((p * stays).sum(-1)[sel].mean()),
        "enter another colour (ends the episode)": float((p * enters).sum(-1)[sel].mean()),
        "safe detour": float((p * detour).sum(-1)[sel].mean())}
    excess = nll["model"] - nll["bayes"]
    out["excess_nll_over_bayes"] = {
        "from knowable steps": float(excess[real & known].sum() / real.sum()),
        "from not knowable steps": float(excess[real & ~known].sum() / real.sum())}
    if controllers is not None:
        post = config.gridworld.env_params("posttrain")
        for name, greedy in (("sampled", False), ("greedy", True)):
            steered = steering.steered_rollout(
                jax.random.fold_in(jax.random.PRNGKey(config.seed), steer_phase.EVAL_TAG),
                params, controllers, model, post, steer_layer, config.analysis.steer_episodes,
                greedy=greedy)
            out[f"steered post-training episodes, {name}"] = {
                "success": float(np.mean(steered.success)),
                "colour_success": rollout.colour_success(steered),
                **rollout.failure_anatomy(steered, post.max_steps)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument("--episodes", type=int, default=1_000)
    parser.add_argument("--steer_layer", type=int, default=None,
                        help="steer the base at this layer with the true subgoal's controller")
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    figures = anatomy(args.path, args.episodes, args.steer_layer)
    print(json.dumps(figures, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
