"""The 1-D device mesh of data-parallel training and the shardings on it."""

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import PyTree

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D device mesh with axis ``"data"`` (default: all devices, of every
    process of a multi-process run; in one process, its local devices)."""
    devices = list(devices) if devices is not None else jax.devices()
    return Mesh(np.array(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of stacked batches: the leading axis is split over the devices."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of a PyTree held whole on every device of the mesh."""
    return NamedSharding(mesh, PartitionSpec())


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Places every array of ``tree`` on all devices of ``mesh`` (replicated).

    A state placed this way and the state returned by a step share one compiled
    step; an unplaced state costs one extra compilation. Over the devices of
    several processes, every process must pass the same values.
    """
    sharding = replicated_sharding(mesh)
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)
    # Over several processes, from host copies: jax 0.10 builds arrays without
    # proper per-device shards from device arrays here (Orbax cannot save them).
    return jax.tree.map(
        lambda leaf: jax.device_put(
            np.asarray(leaf) if isinstance(leaf, jax.Array) else leaf, sharding
        ),
        tree,
    )


def training_mesh(should_parallelize: bool) -> Mesh:
    """The mesh of a training loop: all devices if ``should_parallelize`` (with
    several processes, those of every process), else the first local one.
    Custom steps for the loop are built on this mesh.

    Raises:
        ValueError: If several processes run and ``should_parallelize`` is False
            (one device cannot be shared by the processes).
    """
    if jax.process_count() > 1:
        if not should_parallelize:
            raise ValueError(
                f"This is process {jax.process_index()} of {jax.process_count()} "
                "(jax.distributed): training over several processes uses the "
                "devices of all of them; pass should_parallelize=True."
            )
        return make_mesh(jax.devices())
    devices = jax.local_devices()
    return make_mesh(devices if should_parallelize else devices[:1])
