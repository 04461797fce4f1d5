import os

import pytest

from experiments import configs, rate_distortion_seeds
from launch.rundir import write_json


def _run(tmp_path, name, meta_seed, points):
    """A run directory as the launcher leaves it after the metacontroller phase."""
    path = tmp_path / name
    os.makedirs(path)
    config = configs.to_dict(configs.replace_fields(configs.preset("smoke"), meta_seed=meta_seed))
    write_json(str(path / "config.json"), config)
    sweep = [dict(variant="standard", hard_beta_nll=p[1] + 0.1, switches_per_episode=2.0,
                  alpha=p[0], nll=p[1], kl=p[2], switch_f1=p[3]) for p in points]
    sweep.append(dict(sweep[0], variant="cotrain"))  # another variant is left out
    write_json(str(path / "results.json"), {"metacontroller": {"sweep": sweep}})
    return str(path)


def test_points_are_gathered_per_alpha_with_medians_and_aligned_seeds(tmp_path):
    runs = [_run(tmp_path, "a", -1, [(0.1, 0.30, 0.5, 0.95), (0.5, 0.40, 0.0, 0.0)]),  # seed 0
            _run(tmp_path, "b", 1, [(0.1, 0.20, 0.7, 0.85)]),
            _run(tmp_path, "c", 2, [(0.1, 0.25, 0.4, 0.92)])]
    rows = rate_distortion_seeds.summarise(rate_distortion_seeds.gather(runs))
    assert [r["alpha"] for r in rows] == [0.1, 0.5]
    first = rows[0]
    assert first["seeds"] == [0, 1, 2] and first["aligned_seeds"] == 2
    assert first["nll_median"] == pytest.approx(0.25) and first["nll_range"] == [0.20, 0.30]
    assert first["kl_median"] == pytest.approx(0.5)
    assert rows[1]["seeds"] == [0] and rows[1]["aligned_seeds"] == 0
    plot = tmp_path / "rd.png"
    assert rate_distortion_seeds.main([*runs, f"--plot={plot}"]) == 0
    assert plot.stat().st_size > 0


def test_a_seed_twice_or_an_unfinished_run_is_refused(tmp_path):
    twice = [_run(tmp_path, "a", 1, [(0.1, 0.3, 0.5, 0.9)]),
             _run(tmp_path, "b", 1, [(0.1, 0.2, 0.6, 0.9)])]
    with pytest.raises(SystemExit, match="α 0.1 appears twice"):
        rate_distortion_seeds.summarise(rate_distortion_seeds.gather(twice))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(SystemExit, match="no finished metacontroller phase"):
        rate_distortion_seeds.gather([str(tmp_path / "empty")])


def _smoke_data():
    import jax

    from hrl_internal.data import dataset, packing
    from hrl_internal.models import transformer

    config = configs.preset("smoke")
    env = config.gridworld.env_params("pretrain")
    model = config.model.transformer(env)
    base = transformer.init(jax.random.PRNGKey(0), model)
    episodes = dataset.to_numpy(dataset.generate(jax.random.split(jax.random.PRNGKey(1), 64), env))
    return config, base, packing.pack(episodes, env)


def test_vmapped_seeds_train_as_the_phase_trains_each_seed(tmp_path):
    """Seeds trained together under vmap end where the launcher's phase, run with
    ``--meta_seed=s``, ends for each seed alone (to float rounding), and the seeds differ.
    ``cotrain``, whose seeds carry the base model as well as the metacontroller, covers the
    frozen-base variant's path too (its state is the same less the base)."""
    variant = "cotrain"
    import jax
    import numpy as np

    from launch.phases import metacontroller as meta_phase
    from launch.rundir import RunDir

    config, base, rows = _smoke_data()
    rows = jax.tree.map(jax.numpy.asarray, rows)
    together = rate_distortion_seeds.train_seeds(config, base, rows, 0.3, [3, 5], variant=variant)
    assert ("base" in together.params) == (variant == "cotrain")
    for i, seed in enumerate((3, 5)):
        run_dir = RunDir(str(tmp_path / f"seed{seed}"))
        alone = meta_phase.train_one(rate_distortion_seeds.seed_config(config, seed, [0.3],
                                                                       variant),
                                     run_dir, base, rows, variant, 0.3)
        assert int(alone.step) == int(together.step[i]) == config.meta.meta_steps
        for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(together.params)):
            np.testing.assert_allclose(np.asarray(b[i]), np.asarray(a), rtol=2e-4, atol=2e-5)
    first, second = (jax.tree.map(lambda x: x[i], together.params) for i in (0, 1))
    for part in first:
        assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(first[part]),
                                                        jax.tree.leaves(second[part])))


def test_written_seeds_resume_at_the_first_unfinished_alpha(tmp_path, monkeypatch):
    """Each α's points are on disk once it is scored; a rerun trains only the α not there yet,
    and the gathering reads the written seeds for their variant alone."""
    config, base, rows = _smoke_data()
    out = str(tmp_path / "out")
    # The frozen-base variant: the cheaper of the two to train (the base takes no gradient).
    dirs = rate_distortion_seeds.write_seeds(config, base, rows, rows, [0.3], [1, 2], out,
                                             "standard")
    trained = []
    real = rate_distortion_seeds.train_seeds
    monkeypatch.setattr(rate_distortion_seeds, "train_seeds",
                        lambda *a, **k: trained.append(a[3]) or real(*a, **k))
    rate_distortion_seeds.write_seeds(config, base, rows, rows, [0.3, 1.0], [1, 2], out,
                                      "standard")
    assert trained == [1.0]
    by_alpha = rate_distortion_seeds.gather(dirs, "standard")
    assert sorted(by_alpha) == [0.3, 1.0]
    assert [p["meta_seed"] for p in by_alpha[0.3]] == [1, 2]
    assert rate_distortion_seeds.gather(dirs, "cotrain") == {}


def test_train_refuses_bad_input_before_any_compute(tmp_path):
    with pytest.raises(SystemExit):
        rate_distortion_seeds.main([f"--train={tmp_path}", "--seeds=1,1", f"--out={tmp_path}"])
    with pytest.raises(SystemExit):
        rate_distortion_seeds.main([f"--train={tmp_path}", "--seeds=1", f"--out={tmp_path}"])
