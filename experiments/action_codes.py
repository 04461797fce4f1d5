"""Internal RL where the answer is known: codes that are primitive actions.

A toy internal environment whose code space provably holds the optimal policy: a small random base
model on a 3x3 gridworld (two colours, no walls, task 0-1, 8 steps) with a controller bank in place
of the metacontroller's decoder, one edit per action (``e + c_g`` at the last layer, ``c_g`` along
action g's read-out, so the code ``z`` with ``argmax z = g`` makes the model take action g), and a
decision at every step (the forced-switch variant). That MDP is exactly the gridworld with the
primitive actions, so raw-action RL on the same base model is its reference, and a learner that
cannot climb here cannot climb anywhere. Not the paper's setting: a check of the internal-RL
learner (the Gaussian code policy, the clipped surrogate, the episode batching) alone.

    python -m experiments.action_codes --out=experiments/results/action_codes.json

prints and writes the success curves of internal RL over the action codes (by policy width, layer
``--blocks`` and head ``--heads``) and of raw-action RL, ``--seeds`` seeds each, ``--updates``
updates of ``--slots`` slots.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hrl_internal.envs import gridworld
from hrl_internal.models import metacontroller, transformer
from hrl_internal.rl import internal_env, internal_rl, policy, raw_action, train

ENV = gridworld.EnvParams(grid_size=3, num_objects=2, num_walls=0, task_set="0-1", max_steps=8)
# The random base's read-out scaled up so that an edit can make one action near certain (after the
# final layer norm a random head spans logits of about +-2, too flat to force an action).
HEAD_SCALE = 4.0
EDIT_SIZE = 30.0  # |c_g|, against |e| of about 4


def base_model() -> tuple[transformer.TransformerConfig, Any]:
    model = transformer.TransformerConfig(obs_size=ENV.obs_size, num_actions=4, d_model=16,
                                          num_layers=1, num_heads=2, head_dim=8, mlp_dim=32,
                                          max_len=ENV.max_steps)
    params = transformer.init(jax.random.PRNGKey(0), model)
    head = dict(params["action_head"], w=HEAD_SCALE * params["action_head"]["w"])
    return model, {**params, "action_head": head}


def action_controllers(params: Any) -> dict[str, jax.Array]:
    """One affine controller per action, ``e + c_g`` (``a``, ``b`` zero): ``c_g [4, d]`` along
    action g's read-out column, centred over the actions."""
    w = params["action_head"]["w"]  # [d, 4]
    c = (w - w.mean(axis=1, keepdims=True)).T
    c = EDIT_SIZE * c / jnp.linalg.norm(c, axis=1, keepdims=True)
    d = w.shape[0]
    return {"a": jnp.zeros((4, 1, d)), "b": jnp.zeros((4, d, 1)), "c": c}


# Both learners' rollout slots: 16 ticks before the first update, at most 8 episodes a slot.
SLOT_SCHEDULE = {"start_ticks": 16, "max_episodes": 8}


def internal_spec(model: transformer.TransformerConfig, width: int, slots: int = 32,
                  block: str = "rglru", head: str = "gaussian") -> internal_rl.InternalRLSpec:
    meta = metacontroller.MetacontrollerConfig(d_model=model.d_model, latent_dim=4,
                                               variant="forced_switch")
    env_spec = internal_env.InternalEnvSpec(model, meta, ENV, model.num_layers,
                                            decoder="subgoal_controllers")
    code_policy = policy.PolicyConfig(model.d_model, 4, width=width, block=block, head=head)
    return internal_rl.InternalRLSpec(env_spec, code_policy, num_slots=slots, **SLOT_SCHEDULE)


def curve(learner: str, spec: Any, frozen: Any, params: Any, lr: float, seeds: int, updates: int
          ) -> np.ndarray:
    """Success per update ``[seeds, updates]``, seeds vmapped (``train.train_steps``)."""
    hyper = train.RLHyper(learning_rate=lr)
    state = jax.vmap(lambda _: train.init_state(params, hyper))(jnp.arange(seeds))
    keys = jax.random.split(jax.random.PRNGKey(5), seeds)
    _, metrics = train.train_steps(state, frozen, keys, learner=learner, spec=spec, hyper=hyper,
                                   num_steps=updates)
    return np.asarray(metrics["success"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="16,64,256", help="code-policy widths")
    parser.add_argument("--blocks", default="rglru",
                        help=f"code-policy layers, comma-separated ({', '.join(policy.BLOCKS)})")
    parser.add_argument("--heads", default="gaussian",
                        help=f"code-policy heads, comma-separated ({', '.join(policy.HEADS)})")
    parser.add_argument("--lr", type=float, default=3e-3, help="AdamW lr of both learners")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--slots", type=int, default=32)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    try:
        widths = [int(w) for w in args.widths.split(",")]
    except ValueError:
        parser.error(f"--widths: comma-separated positive ints, got {args.widths!r}")
    blocks = args.blocks.split(",")
    if any(b not in policy.BLOCKS for b in blocks):
        parser.error(f"--blocks: allowed {', '.join(policy.BLOCKS)}, got {args.blocks!r}")
    heads = args.heads.split(",")
    if any(h not in policy.HEADS for h in heads):
        parser.error(f"--heads: allowed {', '.join(policy.HEADS)}, got {args.heads!r}")
    for name in ("seeds", "updates", "slots"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name}: must be positive, got {getattr(args, name)}")
    if min(widths) <= 0 or args.lr <= 0:
        parser.error("--widths and --lr must be positive")

    model, base = base_model()
    frozen = internal_env.Frozen(base, action_controllers(base))
    runs: dict[str, Any] = {}
    # (name, learner, spec, what it runs on, the parameters it trains)
    plan = []
    for head in heads:
        for b in blocks:
            for w in widths:
                spec = internal_spec(model, w, args.slots, b, head)
                name = (f"internal_rl_width{w}" + ("" if b == "rglru" else f"_{b}")
                        + ("" if head == "gaussian" else f"_{head}"))
                plan.append((name, "codes", spec, frozen,
                             internal_rl.init_params(jax.random.PRNGKey(0), spec)))
    plan.append(("raw_action_rl", "actions",
                 raw_action.RawActionSpec(model, ENV, num_slots=args.slots, **SLOT_SCHEDULE),
                 base, base))
    for name, learner, spec, env_params, params in plan:
        start = time.perf_counter()
        success = curve(learner, spec, env_params, params, args.lr, args.seeds, args.updates)
        k = max(1, args.updates // 5)
        runs[name] = {"first_fifth": float(success[:, :k].mean()),
                      "last_fifth": float(success[:, -k:].mean()),
                      "last_fifth_per_seed": [round(float(x), 4) for x in success[:, -k:].mean(1)],
                      "curve_mean": [round(float(x), 4) for x in success.mean(0)],
                      "seconds": time.perf_counter() - start}
        print(f"[action_codes] {name}: success {runs[name]['first_fifth']:.3f} over the first "
              f"fifth of {args.updates} updates -> {runs[name]['last_fifth']:.3f} over the last "
              f"(seeds {runs[name]['last_fifth_per_seed']})", flush=True)
    out = {"env": "3x3 gridworld, 2 colours, no walls, task 0-1, 8 steps", "lr": args.lr,
           "seeds": args.seeds, "updates": args.updates, "slots": args.slots, "runs": runs,
           "command": "python -m experiments.action_codes " + " ".join(argv or [])}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
