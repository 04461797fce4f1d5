"""Command-line flags: the run-level ones plus one flag per config field, generated from the
dataclasses in ``experiments.configs`` so that a new field is a new flag with no extra code."""
from __future__ import annotations

import dataclasses
from typing import Any

from absl import flags

from experiments import configs

RUN_FLAGS = ("workdir", "preset", "phases", "force", "devices", "distributed",
             "compilation_cache")


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines ``--workdir --preset --phases --force --devices --distributed
    --compilation_cache`` and a flag per config field (default None: the preset's value)."""
    flags.DEFINE_string("workdir", None, "run directory (created; holds config, artefacts, results)",
                        flag_values=flag_values)
    flags.DEFINE_string("preset", "cpu", f"one of {', '.join(configs.PRESETS)}",
                        flag_values=flag_values)
    flags.DEFINE_list("phases", None, "comma-separated phases to run (default: all)",
                      flag_values=flag_values)
    flags.DEFINE_bool("force", False, "re-run phases that already finished",
                      flag_values=flag_values)
    # Not config fields: where a run computes does not change what it computes (up to float
    # summation order), so a run may resume on another device count.
    flags.DEFINE_integer("devices", 0, "devices to run data-parallel over (0: every device of "
                         "every process)", flag_values=flag_values)
    flags.DEFINE_bool("distributed", False, "join a multi-process run first "
                      "(jax.distributed.initialize; SLURM, TPU pod slices, or JAX_COORDINATOR_"
                      "ADDRESS/JAX_NUM_PROCESSES/JAX_PROCESS_ID)", flag_values=flag_values)
    flags.DEFINE_bool("compilation_cache", True, "keep the compiled XLA programs in the run "
                      "directory (WORKDIR/compile_cache), so a resumed "
                      "run or a rerun phase loads them instead of compiling them again; "
                      "JAX_COMPILATION_CACHE_DIR, if set, is used instead",
                      flag_values=flag_values)
    for name, field in _config_fields().items():
        definer = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer,
                   float: flags.DEFINE_float, str: flags.DEFINE_string}[_type_of(field)]
        help_text = field.metadata.get("help", name) + " (default: the preset's)"
        definer(name, None, help_text, flag_values=flag_values)


def config_overrides(flag_values: flags.FlagValues = flags.FLAGS) -> dict[str, Any]:
    """The config fields given on the command line, by name."""
    return {name: flag_values[name].value for name in _config_fields()
            if flag_values[name].value is not None}


def _config_fields() -> dict[str, dataclasses.Field]:
    config = configs.Config()
    out = {}
    for name, section in configs.field_names(config).items():
        holder = getattr(config, section) if section else config
        out[name] = {f.name: f for f in dataclasses.fields(holder)}[name]
    return out


def _type_of(field: dataclasses.Field) -> type:
    annotation = field.type if isinstance(field.type, str) else field.type.__name__
    return {"bool": bool, "int": int, "float": float, "str": str}[annotation]
