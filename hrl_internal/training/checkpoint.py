"""Orbax checkpoints for training states: atomic saves, the last few kept, resume from the latest.

A checkpoint is a pytree of arrays (params, optimiser state, step). Orbax writes each step to a
temporary directory and renames it when complete, so a crash mid-save leaves the previous
checkpoint intact. Restoring needs a template of the same structure (e.g. a freshly initialised
state), which also fixes dtypes and shapes.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


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
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
        self._manager.wait_until_finished()

    def restore(self, template: Any, step: int | None = None) -> Any:
        """The state saved at ``step`` (default: the latest), shaped like ``template``."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint under {self.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def restore_or(self, template: Any) -> tuple[Any, bool]:
        """``(latest state, True)``, or ``(template, False)`` when nothing was saved yet."""
        if self.latest_step() is None:
            return template, False
        return self.restore(template), True

    def close(self) -> None:
        self._manager.close()
