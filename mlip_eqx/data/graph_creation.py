"""Turning one ChemicalSystem into a single-structure Graph (host, numpy)."""

import numpy as np

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.graph.graph import Graph
from mlip_eqx.graph.neighbourhood import compute_neighbour_list


def species_table(atomic_numbers: list[int] | np.ndarray) -> np.ndarray:
    """Lookup array from atomic number Z to species index (-1 for absent elements).

    Args:
        atomic_numbers: The dataset's elements; species index i is the i-th smallest.

    Returns:
        Array of length 119 with ``table[Z]`` the species index of Z.
    """
    table = np.full(119, -1, dtype=np.int32)
    sorted_numbers = np.unique(np.asarray(atomic_numbers, dtype=np.int64))
    table[sorted_numbers] = np.arange(len(sorted_numbers), dtype=np.int32)
    return table


def graph_from_chemical_system(
    system: ChemicalSystem, cutoff: float, z_to_species: np.ndarray
) -> Graph:
    """Builds the unpadded graph of one structure with a periodic neighbour list.

    Args:
        system: The structure and its labels.
        cutoff: Neighbour cutoff in Å.
        z_to_species: Lookup from atomic number to species index (see
            :func:`species_table`).

    Returns:
        A Graph with one graph, no padding, and numpy leaves.
    """
    species = z_to_species[system.atomic_numbers]
    if np.any(species < 0):
        unknown = sorted(set(system.atomic_numbers[species < 0].tolist()))
        raise ValueError(
            f"{system.source}: atomic numbers {unknown} are not in the element table."
        )
    senders, receivers, shifts = compute_neighbour_list(
        system.positions, system.cell, system.pbc, cutoff
    )
    n_atoms, n_edges = system.num_atoms, len(senders)
    return Graph(
        positions=system.positions.astype(np.float64),
        species=species.astype(np.int32),
        senders=senders,
        receivers=receivers,
        shifts=shifts,
        cell=system.cell[None].astype(np.float64),
        n_node=np.array([n_atoms], dtype=np.int32),
        n_edge=np.array([n_edges], dtype=np.int32),
        energy=np.array([0.0 if system.energy is None else system.energy]),
        forces=(
            np.zeros((n_atoms, 3)) if system.forces is None else system.forces.copy()
        ),
        stress=(
            np.zeros((1, 3, 3)) if system.stress is None else system.stress[None].copy()
        ),
        weight=np.array([system.weight]),
        has_energy=np.array([system.energy is not None]),
        has_forces=np.array([system.forces is not None]),
        has_stress=np.array([system.stress is not None]),
        node_mask=np.ones(n_atoms, dtype=bool),
        edge_mask=np.ones(n_edges, dtype=bool),
        graph_mask=np.ones(1, dtype=bool),
        paired_edges=True,
    )
