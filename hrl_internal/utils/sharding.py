"""Data parallelism over devices with ``jax.sharding``: one mesh axis, ``batch``.

Training and RL programs call ``shard_batch`` on the arrays whose leading axis is the batch (the
sampled training rows, the environment slots). Outside a mesh it does nothing, so every program
runs unchanged on one device. Inside ``use(mesh)`` it constrains that axis to be split over the
mesh's devices; parameters and optimiser states are replicated (``place``), and XLA inserts the
all-reduce of the gradients. The result equals the single-device one up to the order of float
additions.

Multi-host: ``initialize_distributed()`` (the launcher's ``--distributed``) joins the processes
first; ``jax.devices()`` then lists every host's devices and the same mesh spans them. Each process
builds the same data from the same seed, so replicated inputs agree everywhere. Every process runs
every program; only process 0 writes files (``writes_files``), and ``sync`` is the point after
which the others may read them. ``to_numpy`` fetches a result split over several processes whole.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator, Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

AXIS = "batch"


class ShardingError(ValueError):
    """A device count or batch size that cannot be split; names the flag at fault."""


def batch_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (0: all of them, on every host)."""
    devices = jax.devices()
    if num_devices < 0 or num_devices > len(devices):
        raise ShardingError(f"--devices: {num_devices} requested, {len(devices)} available "
                            f"({devices[0].platform}); allowed: 0 (all) to {len(devices)}")
    chosen = devices[:num_devices or len(devices)]
    return jax.make_mesh((len(chosen),), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=chosen)


@contextlib.contextmanager
def use(mesh: jax.sharding.Mesh | None) -> Iterator[None]:
    """Runs the body data-parallel over ``mesh`` (``None`` or one device: as without a mesh)."""
    if mesh is None or mesh.size == 1:
        yield
        return
    with jax.set_mesh(mesh):
        yield


def active_mesh() -> jax.sharding.Mesh | None:
    """The mesh ``use`` set (jax's own context), or None."""
    mesh = jax.sharding.get_mesh()
    return None if mesh.empty else mesh


def num_shards() -> int:
    """Devices the batch axis is split over (1 without a mesh)."""
    mesh = active_mesh()
    return 1 if mesh is None else mesh.size


def shard_batch(tree: Any) -> Any:
    """Inside a jitted function: every leaf's leading (batch) axis split over the mesh.

    A no-op without a mesh, and for leaves whose leading axis does not divide evenly (they stay
    replicated; the launcher checks the configured batch sizes before any compute).
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or AXIS not in mesh.axis_names:
        return tree
    size = mesh.shape[AXIS]

    def constrain(x):
        if getattr(x, "ndim", 0) == 0 or x.shape[0] % size:
            return x
        return jax.lax.with_sharding_constraint(x, PartitionSpec(AXIS))

    return jax.tree.map(constrain, tree)


def place(tree: Any) -> Any:
    """``tree`` committed where the programs run: replicated over the active mesh, else on the
    default device. Jitted calls on committed and uncommitted arrays are separate programs, so
    everything passed between calls goes through here once."""
    return jax.device_put(tree, placement())


def placement() -> jax.sharding.Sharding:
    """Where ``place`` puts arrays (and checkpoints are restored to)."""
    mesh = active_mesh()
    if mesh is None:
        return jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return NamedSharding(mesh, PartitionSpec())


def writes_files() -> bool:
    """Whether this process writes the run's files: process 0 of a multi-process run (the others
    compute the same figures and would write the same bytes to the same shared paths)."""
    return jax.process_index() == 0


def sync(name: str) -> None:
    """Waits until every process of a multi-process run reaches ``sync(name)``: after it, what
    process 0 wrote before it is there for every process to read. A no-op in one process."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def to_numpy(tree: Any) -> Any:
    """Host (numpy) copies of ``tree``'s arrays, whole. An array split over devices of other
    processes (a multi-process run's per-row outputs) is gathered from them first, so every
    process must reach this call at the same point of the program."""
    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(fetch, tree)


def check_divisible(sizes: dict[str, int], shards: int) -> None:
    """Raises ShardingError naming the first flag whose batch does not split over ``shards``."""
    for flag, size in sizes.items():
        if size % shards:
            raise ShardingError(f"--{flag}: {size} does not split over {shards} devices; "
                                f"allowed: a multiple of {shards} (or --devices=1)")


def initialize_distributed() -> None:
    """Joins a multi-process run. The coordinator, process count and id come from a cluster JAX
    detects (SLURM, TPU pod slices, Open MPI) or from ``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (``jax.distributed.initialize`` reads only the
    first of these itself). Raises ShardingError naming the variable at fault."""
    jax.distributed.initialize(**distributed_args(os.environ))


def distributed_args(environ: Mapping[str, str]) -> dict[str, int]:
    """``num_processes`` and ``process_id`` from ``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID`` where
    set (left to JAX's cluster detection where not); raises ShardingError on a bad value."""
    args = {}
    for name, arg in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
        if name in environ:
            try:
                args[arg] = int(environ[name])
            except ValueError:
                args[arg] = -1
            if args[arg] < 0:
                raise ShardingError(f"--distributed: {name}={environ[name]!r}; allowed: an "
                                    "integer >= 0")
    if "num_processes" in args and "process_id" in args and not (
            0 <= args["process_id"] < args["num_processes"]):
        raise ShardingError(f"--distributed: JAX_PROCESS_ID={args['process_id']} with "
                            f"JAX_NUM_PROCESSES={args['num_processes']}; allowed: 0 to "
                            f"{args['num_processes'] - 1}")
    return args
