"""A dataset's batches grouped per device and placed on a mesh, read ahead."""

from collections.abc import Iterator
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh

from mlip_eqx.data.batch_shapes import BatchShape
from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.data.prefetch import prefetch
from mlip_eqx.graph.graph import Graph
from mlip_eqx.training.mesh import batch_sharding

# Groups of batches moved to the devices ahead of the step that uses them.
DEVICE_PREFETCH = 2


class DeviceBatch(NamedTuple):
    """One step's batches on the devices, and how much of them is real.

    Attributes:
        graphs: One padded batch per device, stacked along a leading axis that is
            split over the mesh (the last group is completed with batches that hold
            only padding).
        num_real_nodes: Number of real atoms in the group.
        num_real_graphs: Number of real structures in the group.
        shape: The padded shape of each batch of the group.
    """

    graphs: Graph
    num_real_nodes: int
    num_real_graphs: int
    shape: BatchShape


def num_device_steps(dataset: GraphDataset, mesh: Mesh, epoch: int) -> int:
    """Number of groups (steps) :func:`device_batches` yields for ``epoch``."""
    del epoch  # the number of steps is the same in every epoch
    return dataset.num_steps(mesh.devices.size)


def device_batches(
    dataset: GraphDataset, mesh: Mesh, epoch: int
) -> Iterator[DeviceBatch]:
    """The batches of ``epoch``, one per device of ``mesh`` per step, on the devices.

    Batches are made and transferred on a background thread, a few steps ahead.

    Args:
        dataset: The padded batches (order fixed by its seed and ``epoch``).
        mesh: A 1-D mesh with axis ``"data"`` (see ``make_mesh``).
        epoch: The epoch number.
    """
    sharding = batch_sharding(mesh)

    def produce() -> Iterator[DeviceBatch]:
        for group in dataset.iter_batches(epoch, num_devices=mesh.devices.size):
            yield DeviceBatch(
                jax.device_put(group, sharding),
                int(np.sum(group.node_mask)),
                int(np.sum(group.graph_mask)),
                BatchShape(group.num_nodes, group.num_edges, group.num_graphs),
            )

    return prefetch(produce(), DEVICE_PREFETCH)
