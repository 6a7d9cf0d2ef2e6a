"""Verlet lists of the simulated structures, built on the host with vesin.

A Verlet list holds every pair of atoms within ``cutoff + skin`` once (one
direction), with its integer cell shift, for all structures of a batch. It stays
exact while no atom has moved by half the skin since it was built: a pair that
was farther apart than ``cutoff + skin`` cannot then have come within the
cutoff. The search is vesin's cell list, O(atoms), for any cell (narrow,
triclinic, partly periodic or none).
"""

import dataclasses
import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from mlip_eqx.graph.neighbourhood import compute_neighbour_list, positions_near_origin


@dataclasses.dataclass(frozen=True)
class SystemsLayout:
    """The fixed part of the simulated structures (host, numpy).

    Their atoms are concatenated in order; one padding node follows them.

    Attributes:
        species: Species index of every atom, [num_atoms].
        sizes: Number of atoms of each structure.
        cells: Lattice vectors as rows in Å of each structure (zeros without a
            cell).
        pbc: Periodicity of each structure along its lattice vectors.
        cutoff: The model's cutoff in Å.
    """

    species: np.ndarray
    sizes: tuple[int, ...]
    cells: tuple[np.ndarray, ...]
    pbc: tuple[np.ndarray, ...]
    cutoff: float

    @property
    def offsets(self) -> tuple[int, ...]:
        """Index of the first atom of each structure."""
        return tuple(int(x) for x in np.cumsum((0,) + self.sizes)[:-1])

    @property
    def num_atoms(self) -> int:
        """Number of real atoms, all structures together."""
        return int(sum(self.sizes))

    @property
    def structure_of_atom(self) -> np.ndarray:
        """Index of the structure of every atom, and of the padding graph
        (``len(sizes)``) for the padding node, [num_atoms + 1]."""
        indices = np.repeat(np.arange(len(self.sizes)), self.sizes)
        return np.concatenate([indices, [len(self.sizes)]]).astype(np.int32)

    def slices(self) -> list[slice]:
        """The atoms of each structure."""
        return [
            slice(offset, offset + size)
            for offset, size in zip(self.offsets, self.sizes)
        ]


class VerletList(eqx.Module):
    """The pairs within ``cutoff + skin`` of all structures (device arrays).

    Pair ``k`` goes from ``senders[k]`` to ``receivers[k]``, atom indices of the
    concatenated structures; its vector is ``positions[receivers[k]] -
    positions[senders[k]] + shifts[k] @ cell``. Unused slots, and one slot more
    at the end, join the padding node (index ``num_atoms``) to itself.

    Attributes:
        senders: [capacity + 1].
        receivers: [capacity + 1].
        shifts: Integer cell shifts, [capacity + 1, 3].
        reference_positions: The positions in Å it was built for, [num_atoms, 3].
        edge_capacity: Room for pairs within the cutoff in the graphs made from
            it (static: a new value recompiles).
    """

    senders: Int[Array, " slots"]
    receivers: Int[Array, " slots"]
    shifts: Int[Array, "slots 3"]
    reference_positions: Float[Array, "n_atoms 3"]
    edge_capacity: int = eqx.field(static=True)

    @property
    def capacity(self) -> int:
        """Room for pairs within ``cutoff + skin``."""
        return int(self.senders.shape[0]) - 1


def find_pairs(
    positions: Float[np.ndarray, "n_atoms 3"], layout: SystemsLayout, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Senders, receivers and cell shifts of every pair closer than ``radius``
    (Å), once each, in the atom indices and coordinates of ``positions``."""
    found = []
    for offset, part, cell, pbc in zip(
        layout.offsets, layout.slices(), layout.cells, layout.pbc
    ):
        wrapped, images = positions_near_origin(positions[part], cell, pbc)
        senders, receivers, shifts = compute_neighbour_list(wrapped, cell, pbc, radius)
        half = len(senders) // 2  # the paired layout's first half: one per pair
        senders, receivers = senders[:half], receivers[:half]
        # Shifts between the wrapped atoms, as shifts between the input's atoms.
        shifts = shifts[:half] - images[receivers] + images[senders]
        found.append((senders + offset, receivers + offset, shifts))
    return tuple(np.concatenate(column) for column in zip(*found))


def build_verlet_list(
    positions: Float[np.ndarray, "n_atoms 3"],
    layout: SystemsLayout,
    skin: float,
    capacity: int,
    edge_capacity: int,
    dtype,
) -> tuple[VerletList, int]:
    """The Verlet list of ``positions`` with room for ``capacity`` pairs, or
    for all pairs found if more.

    Args:
        positions: Positions in Å of all atoms, structures concatenated.
        layout: The structures.
        skin: Pairs within the cutoff plus this (Å) are listed.
        capacity: The least room for pairs within ``cutoff + skin``.
        edge_capacity: Room for pairs within the cutoff (see VerletList).
        dtype: The floating dtype of the positions.

    Returns:
        The list, and the number of pairs it holds.
    """
    positions = np.asarray(positions, np.float64)
    senders, receivers, shifts = find_pairs(positions, layout, layout.cutoff + skin)
    num_pairs = len(senders)
    slots = max(capacity, num_pairs) + 1
    padding = layout.num_atoms

    def padded(values, fill):
        out = np.full((slots,) + values.shape[1:], fill, np.int32)
        out[:num_pairs] = values
        return jnp.asarray(out)

    verlet = VerletList(
        senders=padded(senders, padding),
        receivers=padded(receivers, padding),
        shifts=padded(shifts, 0),
        reference_positions=jnp.asarray(positions, dtype),
        edge_capacity=int(edge_capacity),
    )
    return verlet, num_pairs


def grown(current: int, needed: int, multiplier: float) -> int:
    """A capacity for ``needed`` items: ``current`` if it fits, else the larger
    of 1.25 times ``current`` and ``multiplier`` times ``needed``."""
    if needed <= current:
        return current
    return max(math.ceil(1.25 * current), math.ceil(multiplier * needed), needed)


def pairs_within(
    positions: Float[Array, "n_atoms_plus_1 3"],
    verlet: VerletList,
    cells: Float[Array, "n_graphs 3 3"],
    structure_of_atom: Int[Array, " n_atoms_plus_1"],
    cutoff: float,
):
    """Which listed pairs are closer than ``cutoff`` (Å) at ``positions``
    (padding node last), [capacity + 1] booleans."""
    cell = cells[structure_of_atom[verlet.receivers]]
    vectors = (
        positions[verlet.receivers]
        - positions[verlet.senders]
        + jnp.einsum("ei,eij->ej", verlet.shifts.astype(positions.dtype), cell)
    )
    real = verlet.receivers != structure_of_atom.shape[0] - 1
    return real & (jnp.sum(vectors**2, axis=-1) < cutoff**2)


def largest_move(
    positions: Float[Array, "n_atoms 3"], verlet: VerletList
) -> Float[Array, ""]:
    """The farthest any atom has moved since the list was built, in Å."""
    return jnp.sqrt(
        jnp.max(jnp.sum((positions - verlet.reference_positions) ** 2, axis=-1))
    )
