"""Graphs of single structures: positions near the origin, too-close atoms."""

import dataclasses

import numpy as np
import pytest

from mlip_eqx.data.chemical_system import InvalidStructureError
from mlip_eqx.data.graph_creation import graph_from_chemical_system, species_table
from mlip_eqx.models import ForceField
from mlip_eqx.testing.physics import predict_graph
from mlip_eqx.testing.structures import random_system
from tests.helpers.models import DATASET_INFO
from tests.helpers.pair_network import PairNetwork

TABLE = species_table([29, 47, 79])
CUTOFF = DATASET_INFO.cutoff_distance_angstrom


@pytest.fixture(scope="module")
def force_field():
    network = PairNetwork(PairNetwork.Config(), DATASET_INFO)
    return ForceField(network, predict_stress=False)


@pytest.mark.parametrize("periodic", [False, True], ids=["molecule", "periodic"])
def test_far_from_origin_gives_the_same_float32_prediction(force_field, periodic):
    system = random_system(np.random.default_rng(3), 8, periodic=periodic)
    positions = system.positions + np.array([1e6, -2e6, 3e6])
    if periodic:
        # Unwrapped atoms, as in an MD trajectory: whole lattice vectors away.
        positions[2] += np.array([40, -7, 12]) @ system.cell
    far = dataclasses.replace(system, positions=positions)

    near_graph = graph_from_chemical_system(system, CUTOFF, TABLE)
    far_graph = graph_from_chemical_system(far, CUTOFF, TABLE)
    near, far_prediction = (
        predict_graph(force_field, graph) for graph in (near_graph, far_graph)
    )

    assert near.energy.dtype == np.float32
    np.testing.assert_allclose(far_prediction.energy, near.energy, atol=1e-5)
    np.testing.assert_allclose(far_prediction.forces, near.forces, atol=1e-5)
    # Atoms keep their order: labels and species stay with their atoms.
    np.testing.assert_array_equal(far_graph.forces, system.forces)
    np.testing.assert_array_equal(far_graph.species, near_graph.species)
    assert np.abs(far_graph.positions).max() < 20.0


def test_graph_positions_are_centred_or_wrapped_into_the_cell():
    rng = np.random.default_rng(4)
    molecule = random_system(rng, 5, periodic=False)
    graph = graph_from_chemical_system(molecule, CUTOFF, TABLE)
    np.testing.assert_allclose(graph.positions.mean(axis=0), 0.0, atol=1e-12)
    crystal = random_system(rng, 5)
    moved = dataclasses.replace(crystal, positions=crystal.positions + 123.4)
    graph = graph_from_chemical_system(moved, CUTOFF, TABLE)
    fractional = graph.positions @ np.linalg.inv(crystal.cell)
    assert np.all((fractional >= 0) & (fractional < 1))


def with_atom_near(system, atom, target, offset):
    positions = system.positions.copy()
    positions[atom] = target + offset
    return dataclasses.replace(system, positions=positions, source="a.xyz, frame 3")


def test_atoms_closer_than_the_threshold_name_frame_atoms_and_distance():
    system = random_system(np.random.default_rng(5), 8, periodic=False)
    close = with_atom_near(system, 6, system.positions[2], [1e-5, 0.0, 0.0])
    with pytest.raises(
        InvalidStructureError,
        match=r"a\.xyz, frame 3: atoms 2 and 6 are 1e-05 Å apart, closer than the "
        r"minimum interatomic distance of 0\.1 Å \(GraphDatasetBuilder\.Config\."
        r"min_interatomic_distance_angstrom; 0 turns the check off\)\.",
    ):
        graph_from_chemical_system(close, CUTOFF, TABLE)
    # The threshold is a setting: 0 turns the check off.
    graph_from_chemical_system(close, CUTOFF, TABLE, min_interatomic_distance=0.0)
    slightly_close = with_atom_near(system, 6, system.positions[2], [0.3, 0.0, 0.0])
    with pytest.raises(InvalidStructureError, match="0.3 Å apart.* of 0.5 Å"):
        graph_from_chemical_system(
            slightly_close, CUTOFF, TABLE, min_interatomic_distance=0.5
        )


def test_periodic_image_closer_than_the_threshold_is_an_error():
    system = random_system(np.random.default_rng(6), 8)
    image_of_1 = system.positions[1] + system.cell[0]
    close = with_atom_near(system, 4, image_of_1, [0.0, 0.02, 0.0])
    with pytest.raises(
        InvalidStructureError,
        match=r"a\.xyz, frame 3: atom 1 and the periodic image of atom 4 at cell "
        r"shift \[-1, 0, 0\] are 0\.02 Å apart",
    ):
        graph_from_chemical_system(close, CUTOFF, TABLE)


def test_atom_close_to_its_own_image_means_a_too_small_cell():
    system = random_system(np.random.default_rng(7), 1, source="tiny.xyz, frame 0")
    tiny = dataclasses.replace(
        system, cell=np.diag([0.05, 3.0, 3.0]), stress=None, positions=[[0, 1, 1]]
    )
    with pytest.raises(
        InvalidStructureError,
        match=r"tiny\.xyz, frame 0: atom 0 is 0\.05 Å from its own periodic image "
        r"at cell shift \[-?1, 0, 0\]: the cell is too small \(lattice vector "
        r"lengths \[0\.05, 3\.0, 3\.0\] Å\)",
    ):
        graph_from_chemical_system(tiny, CUTOFF, TABLE)


def test_a_cell_in_the_wrong_unit_is_refused_before_its_neighbour_list():
    """A copper cell given in nm (3.6 -> 0.36) would give each atom about
    23,000 neighbours within 4 Å; the estimate is named instead."""
    system = random_system(np.random.default_rng(3), 4, source="cu.xyz, frame 2")
    in_nm = dataclasses.replace(
        system,
        cell=np.eye(3) * 0.36,
        positions=np.array(
            [[0, 0, 0], [0, 0.18, 0.18], [0.18, 0, 0.18], [0.18, 0.18, 0]]
        ),
        stress=None,
    )
    with pytest.raises(
        InvalidStructureError,
        match=r"cu\.xyz, frame 2: about 2\.3e\+04 neighbours per atom .* in Å\?",
    ):
        graph_from_chemical_system(in_nm, CUTOFF, TABLE)
