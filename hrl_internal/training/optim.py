"""The optimiser every learner uses (pretraining, the metacontroller, internal and raw-action RL,
the ant's expert): AdamW after a global-norm clip, with an optional skip of non-finite updates.
"""
from __future__ import annotations

from typing import Any

import optax

from hrl_internal.training import guards


def clipped_adamw(learning_rate: optax.ScalarOrSchedule, weight_decay: float, grad_clip: float,
                  skip_nonfinite: bool = False, decay_mask: Any = None
                  ) -> optax.GradientTransformation:
    """AdamW with β = (0.9, 0.999) (Table A16), after a global-norm clip (``grad_clip`` 0: none).
    Every phase's optimiser; ``learning_rate`` a constant or an optax schedule of the step.

    ``skip_nonfinite``: an update whose gradient holds a NaN/Inf changes nothing (params and
    moments stay as they were) instead of poisoning the run. ``decay_mask``: optax's mask (a
    pytree of bools, or a function of the params returning one) of the leaves weight decay acts
    on; None: all.
    """
    opt = optax.adamw(learning_rate, b1=0.9, b2=0.999, weight_decay=weight_decay,
                      mask=decay_mask)
    if grad_clip > 0:
        opt = optax.chain(optax.clip_by_global_norm(grad_clip), opt)
    if skip_nonfinite:
        opt = optax.apply_if_finite(opt, max_consecutive_errors=guards.MAX_CONSECUTIVE_SKIPS)
    return opt
