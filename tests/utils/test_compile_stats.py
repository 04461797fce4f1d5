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


def test_a_program_loaded_from_the_persistent_cache_counts_as_loaded_not_compiled():
    # The suite runs with a persistent compilation cache (tests/conftest.py), as the launcher does.
    assert jax.config.jax_compilation_cache_dir
    salt = float(int.from_bytes(os.urandom(4), "little"))
    f = jax.jit(lambda x: jnp.sin(x) * salt)
    x = jnp.ones(3).block_until_ready()  # (itself a program, likely in the cache already)
    before = compile_stats.totals()
    f(x).block_until_ready()
    compiled = compile_stats.totals() - before
    assert (compiled.programs, compiled.loaded) == (1, 0)
    jax.clear_caches()  # as a new process: only the persistent cache holds the program
    before = compile_stats.totals()
    jax.jit(lambda x: jnp.sin(x) * salt)(x).block_until_ready()
    loaded = compile_stats.totals() - before
    assert (loaded.programs, loaded.loaded) == (0, 1)


_NEW_PROCESS = """
import sys
import jax, jax.numpy as jnp
from hrl_internal.utils import compile_stats
compile_stats.use_persistent_cache(sys.argv[1])
x = jnp.ones(3).block_until_ready()
before = compile_stats.totals()
jax.jit(lambda x: jnp.cos(x) * 7.0)(x).block_until_ready()
t = compile_stats.totals() - before
print(t.programs, t.loaded)
"""


def test_use_persistent_cache_lets_a_new_process_load_a_small_quick_program(tmp_path):
    """...also from a copy of the cache elsewhere: a run directory copied or moved
    (``experiments.copy_run``) loads what the original compiled."""
    import shutil
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root

    def run(cache):
        out = subprocess.run([sys.executable, "-c", _NEW_PROCESS, str(cache)],
                             env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return tuple(int(n) for n in out.stdout.split()[-2:])

    assert run(tmp_path / "cache") == (1, 0)  # compiled, and kept though it compiles quickly
    assert run(tmp_path / "cache") == (0, 1)  # the next process loads it
    shutil.copytree(tmp_path / "cache", tmp_path / "elsewhere" / "cache")
    assert run(tmp_path / "elsewhere" / "cache") == (0, 1)
