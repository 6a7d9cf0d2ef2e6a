"""JAX-MD neighbour lists of one structure: minimum-image displacements in a
(triclinic) cell, the cell-width check, allocation with a growing capacity."""

import math
from collections.abc import Callable

import ase
import jax.numpy as jnp
import numpy as np
from jax_md import partition
from jaxtyping import Array, Float


def perpendicular_widths(cell: Float[np.ndarray, "3 3"]) -> Float[np.ndarray, "3"]:
    """Distance between opposite faces of the cell along each lattice vector, in Å
    (volume over the area of the face spanned by the other two vectors)."""
    volume = abs(np.linalg.det(cell))
    return np.array(
        [
            volume / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3]))
            for k in range(3)
        ]
    )


def checked_cell(
    atoms: ase.Atoms, cutoff: float, skin: float, source: str
) -> Float[np.ndarray, "3 3"] | None:
    """The cell of a fully periodic structure, or None for a non-periodic one.

    Args:
        atoms: The structure.
        cutoff: The model's cutoff in Å.
        skin: The neighbour-list skin in Å.
        source: What the structure is, for messages.

    Raises:
        ValueError: The structure is periodic along some directions only, or its
            cell is narrower than 2 (cutoff + skin) (the minimum image convention
            of JAX-MD's neighbour lists needs that width).
    """
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if not pbc.any():
        return None
    if not pbc.all():
        raise ValueError(
            f"{source}: the JAX-MD engine simulates fully periodic or non-periodic "
            f"structures, not pbc={pbc.tolist()}; use the ASE engine."
        )
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    if abs(np.linalg.det(cell)) < 1e-8:
        raise ValueError(f"{source}: periodic, but its cell has no volume.")
    width = float(perpendicular_widths(cell).min())
    minimum = 2.0 * (cutoff + skin)
    if width <= minimum:
        raise ValueError(
            f"{source}: the JAX-MD engine needs a periodic cell wider than "
            f"{minimum:.3f} Å in every direction (twice the cutoff {cutoff:g} Å plus "
            f"the neighbour-list skin {skin:g} Å), but this cell is {width:.3f} Å "
            "wide; repeat it (atoms.repeat), lower neighbor_list_skin_angstrom, or "
            "use the ASE engine, which handles narrow cells."
        )
    return cell


def minimum_image_displacement(
    cell: Float[np.ndarray, "3 3"] | None,
) -> Callable[..., Float[Array, "3"]]:
    """``(a, b) -> a - b`` moved by whole lattice vectors to its shortest image
    (rows of ``cell`` are the lattice vectors); plain ``a - b`` without a cell.

    The shortest image is exact for vectors shorter than half the cell's
    smallest perpendicular width (see :func:`checked_cell`).
    """
    if cell is None:
        return lambda a, b, **unused: a - b
    inverse = np.linalg.inv(cell)

    def displacement(a, b, **unused):
        difference = a - b
        shifts = jnp.round(difference @ jnp.asarray(inverse, difference.dtype))
        return difference - shifts @ jnp.asarray(cell, difference.dtype)

    return displacement


def neighbor_list_fns(
    cell: Float[np.ndarray, "3 3"] | None,
    cutoff: float,
    skin: float,
    capacity_multiplier: float,
) -> partition.NeighborListFns:
    """Sparse JAX-MD neighbour lists of the pairs within ``cutoff + skin`` (Å),
    rebuilt when an atom has moved by more than ``skin / 4`` since the last
    build; all-pairs search (no cell list), at any cell shape."""
    return partition.neighbor_list(
        minimum_image_displacement(cell),
        box=1.0,  # only used by cell lists, which are disabled
        r_cutoff=cutoff + skin / 2,
        dr_threshold=skin / 2,
        capacity_multiplier=capacity_multiplier,
        disable_cell_list=True,
        format=partition.NeighborListFormat.Sparse,
    )


def allocate(
    fns: partition.NeighborListFns,
    positions: Float[Array, "n_atoms 3"],
    min_capacity: int = 0,
) -> partition.NeighborList:
    """A neighbour list of ``positions`` with room for at least
    ``min_capacity`` pairs (and the multiplier times the pairs found)."""
    neighbors = fns.allocate(positions)
    capacity = neighbors.idx.shape[1]
    if capacity >= min_capacity:
        return neighbors
    extra = math.ceil((min_capacity - capacity) / len(positions))
    return fns.allocate(positions, extra_capacity=extra)


def capacity(neighbors: partition.NeighborList) -> int:
    """The number of pairs (directed edges) the list has room for."""
    return int(neighbors.idx.shape[1])
