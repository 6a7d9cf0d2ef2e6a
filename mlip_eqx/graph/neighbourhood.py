"""Periodic neighbour lists (vesin) for one structure."""

import sys

import numpy as np
from jaxtyping import Bool, Float, Int


def _import_vesin_without_torch():
    """vesin, imported without PyTorch where PyTorch is installed but not yet
    imported (e.g. with the ``convert`` extra).

    vesin imports PyTorch, when it can, only to accept torch tensors, which this
    package never passes; that import costs every process that builds graphs
    1.3 s of start-up. (In such a process vesin treats torch tensors as other
    arrays.)
    """
    if "torch" in sys.modules:
        import vesin

        return vesin
    sys.modules["torch"] = None  # makes ``import torch`` raise ImportError
    try:
        import vesin
    finally:
        del sys.modules["torch"]
    return vesin


vesin = _import_vesin_without_torch()


def _cell_for_neighbour_search(
    positions: Float[np.ndarray, "n 3"],
    cell: Float[np.ndarray, "3 3"],
    pbc: Bool[np.ndarray, "3"],
) -> Float[np.ndarray, "3 3"]:
    """Fills the lattice vectors of non-periodic directions if they are unusable.

    vesin needs three independent box vectors even where the box is not periodic.
    A non-periodic direction never produces a cell shift, so any vector that keeps the
    box non-singular works: we take the normal of the other two, long enough to span
    the structure.
    """
    if np.all(pbc) or abs(np.linalg.det(cell)) > 1e-8:
        return cell
    if not np.any(pbc):
        return np.zeros((3, 3))
    box = cell.copy()
    extent = float(np.ptp(positions, axis=0).max()) + 1.0
    periodic_rows = [box[k] for k in range(3) if pbc[k]]
    for k in range(3):
        if pbc[k]:
            continue
        others = [box[m] for m in range(3) if m != k]
        normal = np.cross(others[0], others[1])
        if np.linalg.norm(normal) < 1e-8:
            # Two directions missing: any vector orthogonal to the periodic one.
            periodic = periodic_rows[0]
            trial = np.eye(3)[np.argmin(np.abs(periodic))]
            normal = np.cross(periodic, trial)
        box[k] = extent * normal / np.linalg.norm(normal)
    return box


def positions_near_origin(
    positions: Float[np.ndarray, "n_atoms 3"],
    cell: Float[np.ndarray, "3 3"],
    pbc: Bool[np.ndarray, "3"],
) -> tuple[Float[np.ndarray, "n_atoms 3"], Int[np.ndarray, "n_atoms 3"]]:
    """The same structure translated to the origin, periodic directions wrapped.

    Subtracts the mean position (in float64), then moves every atom by whole lattice
    vectors along the periodic directions into the cell, so that float32 positions
    keep all their precision for edge vectors however far from the origin the input
    was. Atoms keep their order; a neighbour list of the result has the same edge
    vectors as one of the input (translation invariance and periodicity).

    Args:
        positions: Cartesian positions in Å.
        cell: Lattice vectors as rows in Å (ignored along non-periodic directions).
        pbc: Periodicity along each lattice vector.

    Returns:
        The translated and wrapped positions in Å (float64), and the lattice
        translation subtracted from each atom in units of the lattice vectors
        (zero along non-periodic directions): atom i was moved by
        ``-images[i] @ cell``, so an edge with cell shift ``s`` between the moved
        atoms i and j has the shift ``s - images[j] + images[i]`` between the
        input's atoms.
    """
    positions = np.asarray(positions, dtype=np.float64)
    centred = positions - positions.mean(axis=0)
    pbc = np.asarray(pbc, dtype=bool)
    images = np.zeros(positions.shape, dtype=np.int64)
    if not np.any(pbc):
        return centred, images
    box = _cell_for_neighbour_search(centred, np.asarray(cell, np.float64), pbc)
    fractional = np.linalg.solve(box.T, centred.T).T
    images[:, pbc] = np.floor(fractional[:, pbc])
    return centred - images @ box, images


def compute_neighbour_list(
    positions: Float[np.ndarray, "n_atoms 3"],
    cell: Float[np.ndarray, "3 3"],
    pbc: Bool[np.ndarray, "3"],
    cutoff: float,
) -> tuple[
    Int[np.ndarray, " n_edges"],
    Int[np.ndarray, " n_edges"],
    Int[np.ndarray, "n_edges 3"],
]:
    """Full neighbour list of all pairs closer than ``cutoff``, in both directions.

    An edge goes from ``sender`` i to ``receiver`` j; its vector is
    ``positions[j] - positions[i] + shift @ cell``. Cutoffs longer than the cell give
    edges to several periodic images; an atom is never its own neighbour at zero shift.

    Args:
        positions: Cartesian positions in Å.
        cell: Lattice vectors as rows in Å (ignored along non-periodic directions).
        pbc: Periodicity along each lattice vector.
        cutoff: Cutoff radius in Å (> 0).

    Returns:
        senders, receivers, and integer cell shifts per edge, in the paired layout:
        the first half holds one direction of every pair, sorted by (receiver,
        sender, shift) so that graphs are reproducible, and edge ``k + n/2`` is the
        reverse of edge ``k`` (sender and receiver swapped, shift negated, so its
        vector is exactly the negated vector).
    """
    if cutoff <= 0:
        raise ValueError(f"cutoff must be > 0 Å, got {cutoff}.")
    positions = np.asarray(positions, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool)
    box = _cell_for_neighbour_search(positions, np.asarray(cell, np.float64), pbc)
    # A half list has each pair once; the reverses are built here, so the list is
    # exactly symmetric even for pairs at the cutoff.
    calculator = vesin.NeighborList(cutoff=float(cutoff), full_list=False)
    senders, receivers, shifts = calculator.compute(
        points=positions, box=box, periodic=pbc, quantities="ijS", copy=True
    )
    order = np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], senders, receivers))
    senders, receivers, shifts = senders[order], receivers[order], shifts[order]
    return (
        np.concatenate([senders, receivers]).astype(np.int32),
        np.concatenate([receivers, senders]).astype(np.int32),
        np.concatenate([shifts, -shifts]).astype(np.int32),
    )
