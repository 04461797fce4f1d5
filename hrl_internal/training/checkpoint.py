"""Orbax checkpoints for training states: atomic saves, the last few kept, resume from the latest.

A checkpoint is a pytree of arrays (params, optimiser state, step). Orbax writes each step to a
temporary directory and renames it when complete, so a crash mid-save leaves the previous
checkpoint intact. A latest checkpoint damaged afterwards (a truncated or deleted file) is
reported with a warning and the one before it is used. A state holding a NaN/Inf is never saved.
Restoring needs a template of the same structure (e.g. a freshly initialised state), which also
fixes dtypes and shapes.
"""
from __future__ import annotations

import os
import sys
from typing import Any

import jax
import orbax.checkpoint as ocp

from hrl_internal.training import guards
from hrl_internal.utils import sharding


class Checkpointer:
    """Saves and restores one training run's states under ``directory``."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                                 enable_async_checkpointing=False))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        """Saves ``state`` as ``step`` (a no-op when ``step`` is already saved: a run's state at a
        step is a function of the step); raises NonFiniteError, saving nothing, on a NaN/Inf."""
        if step in self._manager.all_steps():
            return
        if not guards.all_finite(state):
            raise guards.NonFiniteError(
                f"refusing to save a checkpoint with NaN/Inf values at step {step} under "
                f"{self.directory}; the previous checkpoint is kept")
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
        self._manager.wait_until_finished()

    def restore(self, template: Any, step: int | None = None) -> Any:
        """The state saved at ``step``, shaped like ``template``.

        Default: the latest readable one; an unreadable later one is skipped with a warning on
        stderr (it is overwritten when training passes its step again).
        """
        # Restored straight to where the programs run (replicated over a mesh, if one is active).
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(
            x.shape, x.dtype, sharding=sharding.placement()), template)
        if step is not None:
            saved = sorted(self._manager.all_steps())
            if step not in saved:
                raise FileNotFoundError(f"no checkpoint of step {step} under {self.directory}; "
                                        f"saved steps: {saved or 'none'}")
            return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        steps = sorted(self._manager.all_steps(), reverse=True)
        if not steps:
            raise FileNotFoundError(f"no checkpoint under {self.directory}")
        for i, candidate in enumerate(steps):
            try:
                return self._manager.restore(candidate, args=ocp.args.StandardRestore(abstract))
            except Exception as e:  # orbax raises many types for a damaged step directory
                fallback = (f"using step {steps[i + 1]}" if i + 1 < len(steps)
                            else "no earlier checkpoint is left")
                aside = self._set_aside(candidate)
                reason = str(e).splitlines()[0][:200] if str(e) else ""
                print(f"warning: checkpoint step {candidate} under {self.directory} is unreadable "
                      f"({type(e).__name__}: {reason}); moved to {aside}; {fallback}",
                      file=sys.stderr)
        raise FileNotFoundError(f"no readable checkpoint under {self.directory} "
                                f"(steps {steps} all failed to restore)")

    def _set_aside(self, step: int) -> str:
        """Renames a damaged step directory (kept for inspection) so the step can be saved again."""
        source = os.path.join(self.directory, str(step))
        target = f"{source}.unreadable"
        n = 1
        while os.path.exists(target):
            n += 1
            target = f"{source}.unreadable{n}"
        if sharding.writes_files():
            os.replace(source, target)
        sharding.sync(f"checkpoint set aside {target}")
        self._manager.reload()
        return target

    def restore_or(self, template: Any) -> tuple[Any, bool]:
        """``(latest readable state, True)``, or ``(template, False)`` when nothing was saved yet
        (or nothing saved can be read: training then starts over, with a warning)."""
        if self.latest_step() is None:
            return sharding.place(template), False
        try:
            return self.restore(template), True
        except FileNotFoundError as e:
            print(f"warning: {e}; starting from scratch", file=sys.stderr)
            return sharding.place(template), False

    def close(self) -> None:
        self._manager.close()

