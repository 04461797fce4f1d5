import glob
import os

import jax.numpy as jnp
import numpy as np
import pytest

from hrl_internal.training import guards
from hrl_internal.training.checkpoint import Checkpointer

TEMPLATE = {"w": jnp.zeros(3), "step": jnp.zeros((), jnp.int32)}


def _state(step):
    return {"w": jnp.full(3, float(step)), "step": jnp.int32(step)}


def test_damaged_latest_checkpoint_is_set_aside_with_a_warning_and_the_previous_used(tmp_path,
                                                                                     capsys):
    directory = str(tmp_path / "c")
    ckpt = Checkpointer(directory, max_to_keep=3)
    for step in (1, 2):
        ckpt.save(step, _state(step))
    ckpt.close()
    for path in glob.glob(os.path.join(directory, "2", "**", "d", "*"), recursive=True):
        with open(path, "r+b") as f:
            f.truncate(10)  # a disk fault after the save completed

    reader = Checkpointer(directory)
    state, resumed = reader.restore_or(TEMPLATE)
    reader.close()
    assert resumed and int(state["step"]) == 1
    np.testing.assert_array_equal(state["w"], np.ones(3))
    warning = capsys.readouterr().err
    assert "checkpoint step 2" in warning and "unreadable" in warning and "using step 1" in warning
    assert os.path.isdir(os.path.join(directory, "2.unreadable"))

    again = Checkpointer(directory)
    again.save(2, _state(7))  # training passes step 2 again: it saves normally
    again.close()
    last = Checkpointer(directory)
    assert int(last.restore(TEMPLATE)["w"][0]) == 7
    last.close()


def test_a_nan_state_is_never_saved_and_the_previous_checkpoint_stays(tmp_path):
    ckpt = Checkpointer(str(tmp_path / "c"))
    ckpt.save(1, _state(1))
    with pytest.raises(guards.NonFiniteError, match="step 2"):
        ckpt.save(2, {"w": jnp.array([0.0, jnp.nan, 0.0]), "step": jnp.int32(2)})
    assert ckpt.latest_step() == 1
    ckpt.save(1, _state(5))  # an already saved step is kept as it is
    assert int(ckpt.restore(TEMPLATE)["w"][0]) == 1
    ckpt.close()


def test_nothing_readable_starts_over_with_a_warning(tmp_path, capsys):
    directory = str(tmp_path / "c")
    writer = Checkpointer(directory)
    writer.save(3, _state(3))
    writer.close()
    for path in glob.glob(os.path.join(directory, "3", "**", "d", "*"), recursive=True):
        os.remove(path)
    reader = Checkpointer(directory)
    state, resumed = reader.restore_or(TEMPLATE)
    reader.close()
    assert not resumed and int(state["step"]) == 0
    assert "starting from scratch" in capsys.readouterr().err


def test_restore_of_a_given_step_reads_that_step_and_names_the_saved_ones_when_missing(tmp_path):
    ckpt = Checkpointer(str(tmp_path / "c"), max_to_keep=3)
    for step in (10, 20):
        ckpt.save(step, _state(step))
    np.testing.assert_array_equal(ckpt.restore(TEMPLATE, 10)["w"], np.full(3, 10.0))
    np.testing.assert_array_equal(ckpt.restore(TEMPLATE)["w"], np.full(3, 20.0))
    with pytest.raises(FileNotFoundError, match=r"step 15 .*saved steps: \[10, 20\]"):
        ckpt.restore(TEMPLATE, 15)
    ckpt.close()
