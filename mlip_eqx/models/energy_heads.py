"""From a network's readout heads to node energies: each node takes the head and
the reference energies (E0) of its structure's data set, then the energy scaling
of the DatasetInfo.

Shared by every network, so that multi-head models (one readout head per data
set, e.g. fine-tuning data and replayed pretraining data) behave alike.
"""

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models.atomic_energies import (
    AtomicEnergiesChoice,
    atomic_energies_per_species,
)


def check_readout_heads(num_readout_heads: int, dataset_info: DatasetInfo) -> None:
    """Raises ValueError unless every data set of ``dataset_info`` has a head:
    one head serves all data sets (each keeps its E0), otherwise data set k
    uses head k."""
    num_datasets = dataset_info.num_datasets
    if num_readout_heads != 1 and num_readout_heads < num_datasets:
        raise ValueError(
            f"num_readout_heads={num_readout_heads} but the DatasetInfo has "
            f"{num_datasets} data sets ({list(dataset_info.dataset_names)}): give "
            "one head, shared by all, or at least one per data set."
        )


def node_energies_from_heads(
    head_outputs: Float[Array, "n_node num_heads"],
    node_species: Int[Array, " n_node"],
    node_dataset_idx: Int[Array, " n_node"] | None,
    dataset_info: DatasetInfo,
    atomic_energies: AtomicEnergiesChoice,
    num_species: int,
) -> Float[Array, " n_node"]:
    """Energy of each node in eV:
    ``scaling_mean + scaling_stdev * head_outputs[node, head] + E0[data set, species]``.

    Args:
        head_outputs: The readout of every head (dimensionless).
        node_species: Species index of every node.
        node_dataset_idx: Data set of every node (its structure's); it selects
            the head (head 0 when there is a single one) and the E0 row. None:
            data set 0.
        dataset_info: Energy scaling and the E0 of every data set.
        atomic_energies: The network config's E0 choice (see
            :func:`~mlip_eqx.models.atomic_energies.atomic_energies_per_species`).
        num_species: Number of species slots of the network.
    """
    dtype = head_outputs.dtype
    table = jnp.asarray(
        atomic_energies_per_species(atomic_energies, dataset_info, num_species), dtype
    )
    if node_dataset_idx is None:
        node_dataset_idx = jnp.zeros_like(node_species)
    if head_outputs.shape[1] == 1:
        readout = head_outputs[:, 0]
    else:
        readout = jnp.take_along_axis(
            head_outputs, node_dataset_idx[:, None], axis=1, mode="clip"
        )[:, 0]
    reference = table[jnp.clip(node_dataset_idx, 0, table.shape[0] - 1), node_species]
    return dataset_info.scaling_mean + dataset_info.scaling_stdev * readout + reference
