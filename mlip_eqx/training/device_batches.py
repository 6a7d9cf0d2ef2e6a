"""A dataset's batches grouped into steps and placed on a mesh, read ahead.

Every process of a (multi-process) mesh plans the same steps from the dataset's
seed and the epoch, and builds only the batches of its own devices: with
several processes, each reads only its share of every step's structures, and all
of them run the same number of steps.
"""

from collections.abc import Iterator, Mapping
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh

from mlip_eqx.data.batch_shapes import BatchShape
from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.data.prefetch import prefetch
from mlip_eqx.graph.graph import Graph
from mlip_eqx.training.mesh import batch_sharding
from mlip_eqx.utils.config import ConfigError

# Groups of batches moved to the devices ahead of the step that uses them.
DEVICE_PREFETCH = 2


class DeviceBatch(NamedTuple):
    """One step's batches on the devices, and how much of them is real.

    Attributes:
        graphs: The step's padded batches, stacked along a leading axis that is
            split over the mesh (the last step of a shape is completed with
            batches that hold only padding). With several processes, a global
            array of which this process holds its devices' part.
        num_real_nodes: Number of real atoms in the step (over all processes).
        num_real_graphs: Number of real structures in the step.
        shape: The padded shape of each batch of the step.
    """

    graphs: Graph
    num_real_nodes: int
    num_real_graphs: int
    shape: BatchShape


def batches_per_device(mesh: Mesh, batches_per_step: int | None) -> int:
    """The number of batches each device gets per step.

    Args:
        mesh: The 1-D mesh of the step.
        batches_per_step: The batches of one step over all devices; None: one per
            device.

    Raises:
        ConfigError: If ``batches_per_step`` is not a multiple of the mesh size.
    """
    num_devices = mesh.devices.size
    if batches_per_step is None:
        return 1
    if batches_per_step < 1 or batches_per_step % num_devices:
        raise ConfigError(
            f"TrainingLoopConfig.batches_per_step={batches_per_step} must be a "
            f"multiple of the number of devices of the mesh ({num_devices})."
        )
    return batches_per_step // num_devices


def num_device_steps(
    dataset: GraphDataset, mesh: Mesh, epoch: int, batches_per_step: int | None = None
) -> int:
    """Number of steps :func:`device_batches` yields for ``epoch``."""
    del epoch  # the number of steps is the same in every epoch
    per_device = batches_per_device(mesh, batches_per_step)
    return dataset.num_steps(mesh.devices.size * per_device)


def device_batches(
    dataset: GraphDataset,
    mesh: Mesh,
    epoch: int,
    batches_per_step: int | None = None,
    padded_shapes: Mapping[BatchShape, BatchShape] | None = None,
) -> Iterator[DeviceBatch]:
    """The batches of ``epoch``, grouped into steps, on the devices of ``mesh``.

    Batches are made on a background thread (``dataset.num_batch_prefetch``
    ahead) and transferred on another, a few steps ahead. The steps do not
    depend on the process: a device gets the same batches whichever process
    drives it.

    Args:
        dataset: The padded batches (order fixed by its seed and ``epoch``).
        mesh: A 1-D mesh with axis ``"data"`` (see ``make_mesh``), possibly over
            the devices of several processes.
        epoch: The epoch number.
        batches_per_step: Batches of one step over all devices, a multiple of the
            mesh size (None: one per device). A fixed value gives the same
            steps, and so the same training, on any number of devices.
        padded_shapes: Larger shapes to pad the batches of some of the data
            set's shapes to (e.g. shapes the step is already compiled for).
    """
    per_device = batches_per_device(mesh, batches_per_step)
    per_step = mesh.devices.size * per_device
    sharding = batch_sharding(mesh)
    here = jax.process_index()
    local = [
        (position, device)
        for position, device in enumerate(mesh.devices.flat)
        if device.process_index == here
    ]
    nodes_per_graph = dataset.num_nodes_per_graph

    def host_steps() -> Iterator[tuple[list[Graph], int, int, BatchShape]]:
        for planned, batches in dataset.steps(epoch, per_step):
            shape = (padded_shapes or {}).get(planned, planned)
            stacks = [
                dataset.make_stacked_batches(
                    shape,
                    batches[position * per_device : (position + 1) * per_device],
                    per_device,
                )
                for position, _ in local
            ]
            real = np.concatenate(batches)
            yield stacks, int(nodes_per_graph[real].sum()), real.size, shape

    def produce() -> Iterator[DeviceBatch]:
        steps = host_steps()
        if dataset.num_batch_prefetch > 0:
            steps = prefetch(steps, dataset.num_batch_prefetch)
        for stacks, num_nodes, num_graphs, shape in steps:
            placed = [
                jax.device_put(stack, device)
                for stack, (_, device) in zip(stacks, local, strict=True)
            ]
            graphs = jax.tree.map(
                lambda *parts: jax.make_array_from_single_device_arrays(
                    (per_step, *parts[0].shape[1:]), sharding, list(parts)
                ),
                *placed,
            )
            yield DeviceBatch(graphs, num_nodes, num_graphs, shape)

    return prefetch(produce(), DEVICE_PREFETCH)
