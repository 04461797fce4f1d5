"""The public API: every name in ``hrl_internal.__all__`` resolves, importing the package loads
nothing heavy, and the README's API examples run (so the docs cannot drift from the code)."""
import ast
import importlib
import os
import re
import subprocess
import sys

import jax.numpy as jnp
import numpy as np

import hrl_internal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_block(marker: str) -> str:
    """The python code block right after ``<!-- marker ... -->`` in README.md."""
    text = open(os.path.join(ROOT, "README.md")).read()
    found = re.search(rf"<!-- {re.escape(marker)}[:\s][^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert found, f"README.md has no python block marked {marker!r}"
    return found.group(1)


def test_every_public_name_resolves():
    assert len(set(hrl_internal.__all__)) == len(hrl_internal.__all__)
    for name in hrl_internal.__all__:
        assert getattr(hrl_internal, name) is not None, name
    assert callable(hrl_internal.gridworld.reset) and callable(hrl_internal.gridworld.step)
    for fn in ("init", "apply", "lower", "upper"):
        assert callable(getattr(hrl_internal.transformer, fn)), fn
    for fn in ("init", "unroll", "controller_decoder", "controller"):
        assert callable(getattr(hrl_internal.metacontroller, fn)), fn
    assert callable(hrl_internal.intervention.low_rank_update)
    assert callable(hrl_internal.internal_env.reset) and callable(hrl_internal.internal_env.step)
    assert callable(hrl_internal.internal_rl.rl_loss)
    assert hrl_internal.EnvParams is hrl_internal.gridworld.EnvParams
    assert "transformer" in dir(hrl_internal)


def test_import_loads_nothing_until_used():
    code = ("import sys, hrl_internal, hrl_internal.utils.progress; "
            "print('jax' in sys.modules, 'hrl_internal.rl.internal_rl' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT), timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_readme_steering_example_runs(capsys):
    namespace: dict = {}
    exec(compile(readme_block("api-example"), "README.md", "exec"), namespace)
    plain, steered = namespace["plain"]["action_logits"], namespace["steered"]["action_logits"]
    assert plain.shape == steered.shape == (1, 1, 4)
    change = np.asarray(steered - plain)
    assert np.all(np.isfinite(change)) and np.abs(change).max() > 0  # the code moved the logits
    assert "[[[" in capsys.readouterr().out  # it printed the change
    # A zero edit (b = 0) leaves the model as it was: the difference is the code's doing.
    a, b = namespace["a"], namespace["b"]
    same, _ = namespace["transformer"].apply(
        namespace["base"], namespace["obs"][None, None], namespace["model"],
        controller=lambda e, t: namespace["intervention"].low_rank_update(e, a, jnp.zeros_like(b)),
        layer=1)
    np.testing.assert_allclose(same["action_logits"], plain, atol=1e-6)


def test_readme_trained_model_example_names_exist():
    """It needs a finished run, so it is not executed: its imports run and every ``module.name``
    it calls must exist."""
    code = readme_block("api-example-trained")
    tree = ast.parse(code)
    modules: dict = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                modules[alias.asname or alias.name] = importlib.import_module(
                    f"{node.module}.{alias.name}")
    assert modules, "the block imports the modules it uses"
    calls = [(n.func.value.id, n.func.attr) for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and isinstance(n.func.value, ast.Name) and n.func.value.id in modules]
    assert len(calls) >= 5
    for module, name in calls:
        assert callable(getattr(modules[module], name, None)), f"{module}.{name}"
