"""Turning one ChemicalSystem into a single-structure Graph (host, numpy)."""

import numpy as np
from jaxtyping import Float, Int

from mlip_eqx.data.chemical_system import ChemicalSystem, InvalidStructureError
from mlip_eqx.graph.graph import Graph
from mlip_eqx.graph.neighbourhood import compute_neighbour_list, positions_near_origin

DEFAULT_MIN_INTERATOMIC_DISTANCE = 0.1  # Å
# Dense solids have about 80 neighbours within 6 Å; a periodic cell whose density
# promises far more is a unit mistake (e.g. a cell in nm), whose neighbour list
# would exhaust the memory.
MAX_ESTIMATED_NEIGHBOURS = 2_000


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
    system: ChemicalSystem,
    cutoff: float,
    z_to_species: np.ndarray,
    *,
    min_interatomic_distance: float = DEFAULT_MIN_INTERATOMIC_DISTANCE,
) -> Graph:
    """Builds the unpadded graph of one structure with a periodic neighbour list.

    The graph's positions are the structure's, translated to the origin and wrapped
    into the cell along periodic directions (see
    :func:`~mlip_eqx.graph.neighbourhood.positions_near_origin`): the edge vectors,
    and so all predictions, are the same, but they stay exact in float32 for
    structures far from the origin. Atoms keep their order.

    Args:
        system: The structure and its labels.
        cutoff: Neighbour cutoff in Å.
        z_to_species: Lookup from atomic number to species index (see
            :func:`species_table`).
        min_interatomic_distance: Two atoms (or an atom and a periodic image of any
            atom, itself included) closer than this, in Å, are an error; 0 turns
            the check off. Only pairs within ``cutoff`` are checked.

    Returns:
        A Graph with one graph, no padding, and numpy leaves.

    Raises:
        ValueError: An element is not in the table.
        InvalidStructureError: Two atoms are closer than
            ``min_interatomic_distance``, or a periodic cell is so dense that
            an atom would have more than 2,000 neighbours (a unit mistake).
    """
    species = z_to_species[system.atomic_numbers]
    if np.any(species < 0):
        unknown = sorted(set(system.atomic_numbers[species < 0].tolist()))
        raise ValueError(
            f"{system.source}: atomic numbers {unknown} are not in the element table."
        )
    pbc = np.asarray(system.pbc)
    _check_density(system, cutoff)
    positions, images = positions_near_origin(system.positions, system.cell, pbc)
    senders, receivers, shifts = compute_neighbour_list(
        positions, system.cell, pbc, cutoff
    )
    _check_min_distance(
        system,
        positions,
        images,
        (senders, receivers, shifts),
        min_interatomic_distance,
    )
    n_atoms, n_edges = system.num_atoms, len(senders)
    return Graph(
        positions=positions,
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
        dataset_idx=np.array([system.dataset_idx], dtype=np.int32),
        has_energy=np.array([system.energy is not None]),
        has_forces=np.array([system.forces is not None]),
        has_stress=np.array([system.stress is not None]),
        node_mask=np.ones(n_atoms, dtype=bool),
        edge_mask=np.ones(n_edges, dtype=bool),
        graph_mask=np.ones(1, dtype=bool),
        paired_edges=True,
    )


def _check_density(system: ChemicalSystem, cutoff: float) -> None:
    """Refuses a fully periodic cell whose density gives an atom more than
    ``MAX_ESTIMATED_NEIGHBOURS`` neighbours within ``cutoff`` (estimated from
    the atoms per volume), before its neighbour list is built."""
    if not np.all(system.pbc):
        return
    volume = abs(float(np.linalg.det(system.cell)))
    if volume == 0.0:
        return
    density = system.num_atoms / volume
    estimate = density * 4.0 / 3.0 * np.pi * cutoff**3
    if estimate > MAX_ESTIMATED_NEIGHBOURS:
        raise InvalidStructureError(
            f"{system.source}: about {estimate:.3g} neighbours per atom within "
            f"{cutoff} Å ({system.num_atoms} atoms in {volume:.3g} Å³, "
            f"{density:.3g} atoms/Å³, where solids have about 0.1): are the cell "
            "and positions in Å?"
        )


def _check_min_distance(
    system: ChemicalSystem,
    positions: Float[np.ndarray, "n_atoms 3"],
    images: Int[np.ndarray, "n_atoms 3"],
    edges: tuple[np.ndarray, np.ndarray, np.ndarray],
    min_distance: float,
) -> None:
    """Raises if the shortest edge is shorter than ``min_distance`` (Å).

    Args:
        system: The structure (its cell, and its source for the message).
        positions: The graph's positions, from ``positions_near_origin``, in Å.
        images: The lattice translations that ``positions_near_origin`` applied,
            to give cell shifts in the input's coordinates.
        edges: Senders, receivers and cell shifts of the paired neighbour list of
            ``positions``.
        min_distance: The threshold in Å; 0 turns the check off.
    """
    senders, receivers, shifts = edges
    num_pairs = len(senders) // 2
    if min_distance <= 0 or num_pairs == 0:
        return
    senders, receivers = senders[:num_pairs], receivers[:num_pairs]
    shifts = shifts[:num_pairs]
    vectors = positions[receivers] - positions[senders] + shifts @ system.cell
    lengths = np.linalg.norm(vectors, axis=1)
    closest = int(np.argmin(lengths))
    distance = float(lengths[closest])
    if distance >= min_distance:
        return
    first, second = int(senders[closest]), int(receivers[closest])
    shift = shifts[closest] - images[second] + images[first]
    if first > second:
        first, second, shift = second, first, -shift
    limit = (
        f"the minimum interatomic distance of {min_distance} Å "
        "(GraphDatasetBuilder.Config.min_interatomic_distance_angstrom; 0 turns "
        "the check off)"
    )
    if first == second:
        lattice_lengths = np.round(np.linalg.norm(system.cell, axis=1), 6).tolist()
        raise InvalidStructureError(
            f"{system.source}: atom {first} is {distance:.3g} Å from its own "
            f"periodic image at cell shift {shift.tolist()}: the cell is too small "
            f"(lattice vector lengths {lattice_lengths} Å), closer than {limit}."
        )
    if np.any(shift):
        pair = (
            f"atom {first} and the periodic image of atom {second} at cell shift "
            f"{shift.tolist()} are"
        )
    else:
        pair = f"atoms {first} and {second} are"
    raise InvalidStructureError(
        f"{system.source}: {pair} {distance:.3g} Å apart, closer than {limit}."
    )
