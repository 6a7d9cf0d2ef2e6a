import itertools

import numpy as np
import pytest

from mlip_eqx.graph.neighbourhood import compute_neighbour_list, positions_near_origin


def brute_force_edges(positions, cell, pbc, cutoff):
    """All (sender, receiver, shift) with |x_j - x_i + shift @ cell| < cutoff."""
    ranges = []
    for k in range(3):
        if not pbc[k]:
            ranges.append([0])
            continue
        others = [cell[m] for m in range(3) if m != k]
        height = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(*others))
        reach = int(np.ceil(cutoff / height)) + 1
        ranges.append(range(-reach, reach + 1))
    edges = set()
    n = len(positions)
    for shift in itertools.product(*ranges):
        offset = np.array(shift) @ cell
        for i in range(n):
            for j in range(n):
                if i == j and not any(shift):
                    continue
                if np.linalg.norm(positions[j] - positions[i] + offset) < cutoff:
                    edges.add((i, j, *shift))
    return edges


def random_triclinic_cell(rng, length):
    cell = np.eye(3) * length + rng.uniform(-0.35, 0.35, (3, 3)) * length
    assert abs(np.linalg.det(cell)) > 0.2 * length**3
    return cell


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "pbc",
    [(True, True, True), (True, False, True), (False, True, False), (False,) * 3],
)
def test_matches_brute_force_on_random_triclinic_cells(seed, pbc):
    rng = np.random.default_rng(seed)
    # Small cells and long cutoffs: several periodic images per atom.
    length = rng.uniform(2.0, 4.5)
    cell = random_triclinic_cell(rng, length)
    num_atoms = int(rng.integers(1, 6))
    positions = rng.uniform(0, 1, (num_atoms, 3)) @ cell
    cutoff = rng.uniform(1.2, 2.0) * length
    pbc = np.array(pbc)

    senders, receivers, shifts = compute_neighbour_list(positions, cell, pbc, cutoff)

    found = {
        (int(s), int(r), *map(int, t)) for s, r, t in zip(senders, receivers, shifts)
    }
    assert len(found) == len(senders), "duplicate edges"
    assert found == brute_force_edges(positions, cell, pbc, cutoff)


def test_lists_are_full_and_symmetric():
    rng = np.random.default_rng(1)
    cell = random_triclinic_cell(rng, 3.0)
    positions = rng.uniform(0, 1, (4, 3)) @ cell
    senders, receivers, shifts = compute_neighbour_list(
        positions, cell, np.array([True] * 3), 4.0
    )
    forward = {
        (int(s), int(r), *map(int, t)) for s, r, t in zip(senders, receivers, shifts)
    }
    backward = {(r, s, -a, -b, -c) for s, r, a, b, c in forward}
    assert forward == backward


def test_non_periodic_direction_with_zero_cell_vector():
    rng = np.random.default_rng(2)
    cell = np.array([[3.0, 0.0, 0.0], [0.8, 2.9, 0.0], [0.0, 0.0, 0.0]])
    positions = rng.uniform(0, 3, (5, 3))
    pbc = np.array([True, True, False])
    senders, receivers, shifts = compute_neighbour_list(positions, cell, pbc, 3.5)
    found = {
        (int(s), int(r), *map(int, t)) for s, r, t in zip(senders, receivers, shifts)
    }
    full_cell = cell.copy()
    full_cell[2] = [0.0, 0.0, 100.0]
    assert found == brute_force_edges(positions, full_cell, pbc, 3.5)
    assert np.all(shifts[:, 2] == 0)


def test_isolated_atom_has_no_edges_and_bad_cutoff_raises():
    senders, receivers, shifts = compute_neighbour_list(
        np.zeros((1, 3)), np.zeros((3, 3)), np.zeros(3, bool), 5.0
    )
    assert len(senders) == len(receivers) == len(shifts) == 0
    with pytest.raises(ValueError, match="cutoff"):
        compute_neighbour_list(
            np.zeros((1, 3)), np.zeros((3, 3)), np.zeros(3, bool), 0.0
        )


def sorted_edge_vectors(positions, cell, pbc, cutoff):
    senders, receivers, shifts = compute_neighbour_list(positions, cell, pbc, cutoff)
    vectors = positions[receivers] - positions[senders] + shifts @ cell
    return vectors[np.lexsort(np.round(vectors, 6).T)]


@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True), (False,) * 3])
def test_positions_near_origin_keep_edge_vectors(pbc):
    rng = np.random.default_rng(3)
    cell = random_triclinic_cell(rng, 4.0)
    if not pbc[1]:
        cell[1] = 0.0
    pbc = np.array(pbc)
    positions = rng.uniform(0, 1, (6, 3)) @ np.eye(3) * 4.0
    # Far from the origin, some atoms several lattice vectors away.
    far = positions + 1e5 + rng.integers(-3, 4, (6, 3)) * pbc @ cell

    moved, images = positions_near_origin(far, cell, pbc)

    np.testing.assert_allclose(moved, far - far.mean(axis=0) - images @ cell)
    assert np.all(images[:, ~pbc] == 0)
    assert np.abs(moved).max() < 20.0
    np.testing.assert_allclose(
        sorted_edge_vectors(moved, cell, pbc, 4.5),
        sorted_edge_vectors(positions, cell, pbc, 4.5),
        atol=1e-9,
    )
