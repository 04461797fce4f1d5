import os

import jax
import jax.numpy as jnp

from hrl_internal.utils import compile_stats


def test_counts_a_new_program_once_and_not_its_reuse():
    salt = float(int.from_bytes(os.urandom(4), "little"))  # a program no cache has seen
    f = jax.jit(lambda x: jnp.tanh(x) * salt)
    before = compile_stats.totals()
    f(jnp.ones(5)).block_until_ready()
    first = compile_stats.totals() - before
    assert first.programs >= 1 and first.seconds > 0
    f(jnp.ones(5)).block_until_ready()
    assert (compile_stats.totals() - before).programs == first.programs
