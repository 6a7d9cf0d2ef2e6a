"""MLIPForceFieldASECalculator: the force field's numbers through ASE, stress as
ASE's finite differences, padded capacities, atom-count changes, model archives."""

import math

import jax
import numpy as np
import pytest
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_stress
from ase.stress import voigt_6_to_full_3x3_stress

from mlip_eqx.data.graph_dataset_builder import UnseenElementsError
from mlip_eqx.inference.atoms_graphs import graph_from_atoms
from mlip_eqx.models.model_io import save_model_to_zip
from mlip_eqx.simulation.ase import (
    MLIPForceFieldASECalculator,
    NumberOfAtomsChangedError,
)
from mlip_eqx.testing import physics
from tests.helpers.atoms import as_atoms, as_system, structures_of_every_periodicity
from tests.helpers.compilations import compilations, logging_compilations
from tests.helpers.models import force_field

STRUCTURES = structures_of_every_periodicity(seed=3)
TOLERANCE = {"rtol": 1e-6, "atol": 1e-10}  # float64


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def calculator(atoms, predict_stress=False, **options) -> MLIPForceFieldASECalculator:
    """The calculator of the tiny MACE (stress is computed whatever the flag)."""
    ff = force_field("mace-tiny", predict_stress=predict_stress)
    return MLIPForceFieldASECalculator(atoms, 1.25, ff, **options)


def expected_prediction(atoms) -> physics.StructurePrediction:
    """The float64 force field (with stress) called on the structure."""
    ff = force_field("mace-tiny", predict_stress=True)
    assert ff.dtype == np.float64
    (prediction,) = physics.predict_each(ff, [as_system(atoms)])
    return prediction


def assert_results_equal_the_force_field(atoms, expected) -> None:
    energy = atoms.get_potential_energy()
    np.testing.assert_allclose(energy, expected.energy, **TOLERANCE)
    assert atoms.get_potential_energy(force_consistent=True) == energy
    np.testing.assert_allclose(atoms.get_forces(), expected.forces, **TOLERANCE)
    stress = voigt_6_to_full_3x3_stress(atoms.get_stress())
    np.testing.assert_allclose(stress, expected.stress, **TOLERANCE)


@pytest.mark.parametrize("kind", ["periodic", "slab"])
def test_energy_forces_stress_equal_the_force_field(x64, kind):
    atoms = as_atoms(STRUCTURES[kind])
    atoms.calc = calculator(atoms)
    expected = expected_prediction(atoms)
    assert_results_equal_the_force_field(atoms, expected)
    assert np.abs(expected.stress).max() > 1e-4  # a real check of the stress
    energies = atoms.get_potential_energies()
    assert energies.shape == (len(atoms),)
    np.testing.assert_allclose(energies.sum(), expected.energy, rtol=1e-12)


def test_molecule_has_energy_forces_and_per_atom_energies_but_no_stress(x64):
    atoms = as_atoms(STRUCTURES["molecule"])
    atoms.calc = calculator(atoms)
    expected = expected_prediction(atoms)
    np.testing.assert_allclose(
        atoms.get_potential_energy(), expected.energy, **TOLERANCE
    )
    np.testing.assert_allclose(atoms.get_forces(), expected.forces, **TOLERANCE)
    np.testing.assert_allclose(
        atoms.get_potential_energies().sum(), expected.energy, rtol=1e-12
    )
    with pytest.raises(PropertyNotImplementedError, match="stress"):
        atoms.get_stress()


@pytest.mark.parametrize("kind", ["periodic", "slab"])
def test_stress_equals_ase_finite_differences(x64, kind):
    atoms = as_atoms(STRUCTURES[kind])
    atoms.calc = calculator(atoms)
    stress = atoms.get_stress()
    numerical = calculate_numerical_stress(atoms, eps=1e-6)
    assert np.abs(stress - numerical).max() <= 1e-4 * np.abs(stress).max()


def test_per_atom_energies_of_a_supercell_repeat_those_of_the_cell(x64):
    atoms = as_atoms(STRUCTURES["periodic"])
    atoms.calc = calculator(atoms)
    supercell = atoms.repeat((2, 1, 1))
    supercell.calc = calculator(supercell)
    np.testing.assert_allclose(
        supercell.get_potential_energies(),
        np.tile(atoms.get_potential_energies(), 2),
        rtol=1e-10,
    )


def edge_capacity(num_edges: int) -> int:
    """1.25 times the edges, rounded up to an even number."""
    capacity = math.ceil(1.25 * num_edges)
    return capacity + capacity % 2


def test_capacity_grows_only_when_exceeded_and_only_then_recompiles(x64, caplog):
    atoms = as_atoms(STRUCTURES["periodic"])
    calc = calculator(atoms)
    atoms.calc = calc
    ff = calc.force_field
    num_edges = graph_from_atoms(atoms, ff, "start").num_edges
    first_capacity = edge_capacity(num_edges)
    assert (calc.node_capacity, calc.edge_capacity) == (len(atoms), first_capacity)
    atoms.get_forces()  # compiles the first capacity, without stress
    atoms.get_stress()  # and with stress

    def compressed(scale: float):
        squeezed = atoms.copy()
        squeezed.set_cell(atoms.cell * scale, scale_atoms=True)
        return squeezed, graph_from_atoms(squeezed, ff, "squeezed").num_edges

    candidates = [compressed(scale) for scale in np.linspace(0.995, 0.8, 40)]
    within, _ = next(c for c in candidates if num_edges < c[1] <= first_capacity)
    beyond, beyond_edges = next(c for c in candidates if c[1] > first_capacity)
    atoms.rattle(0.02, seed=1)
    structures = (within, atoms, beyond)
    capacities = (first_capacity, first_capacity, edge_capacity(beyond_edges))
    expected = [expected_prediction(structure) for structure in structures]
    with logging_compilations(caplog):
        for structure, capacity, prediction, compiled in zip(
            structures, capacities, expected, (0, 0, 2)
        ):
            structure.calc = calc
            assert_results_equal_the_force_field(structure, prediction)
            assert calc.edge_capacity == capacity
            assert compilations(caplog.records) == compiled
        atoms.rattle(0.02, seed=2)
        atoms.get_forces()
        atoms.get_stress()
        assert compilations(caplog.records) == 2


def test_changing_the_number_of_atoms_is_an_error_unless_allowed(x64):
    atoms = as_atoms(STRUCTURES["periodic"])
    fewer = atoms[:-1]
    fewer.calc = calculator(atoms)
    with pytest.raises(
        NumberOfAtomsChangedError,
        match=r"7 atoms, but the calculator was built for 8.*allow_nodes_to_change",
    ):
        fewer.get_potential_energy()
    allowed = calculator(atoms, allow_nodes_to_change=True)
    more = atoms.repeat((2, 1, 1))
    for structure in (fewer, more):
        structure.calc = allowed
        assert_results_equal_the_force_field(structure, expected_prediction(structure))
    assert allowed.node_capacity == len(more)


def test_from_zip_gives_the_same_numbers(x64, tmp_path):
    path = tmp_path / "model.zip"
    save_model_to_zip(path, force_field("mace-tiny"))
    atoms = as_atoms(STRUCTURES["slab"])
    loaded = MLIPForceFieldASECalculator.from_zip(path, atoms)
    assert loaded.force_field.dtype == np.float64
    assert loaded.edge_capacity_multiplier == 1.25
    copy = atoms.copy()
    copy.calc = calculator(copy)
    atoms.calc = loaded
    for name in ("energy", "forces", "stress", "energies"):
        np.testing.assert_array_equal(
            loaded.get_property(name, atoms), copy.calc.get_property(name, copy)
        )


def test_unknown_elements_and_bad_multipliers_are_errors():
    atoms = as_atoms(STRUCTURES["molecule"])
    iron = atoms.copy()
    iron.numbers[2] = 26
    with pytest.raises(UnseenElementsError, match=r"Fe \(Z=26\).*knows Cu, Ag, Au"):
        calculator(iron)
    atoms.calc = calculator(atoms)
    atoms.numbers[2] = 26
    with pytest.raises(UnseenElementsError, match=r"Fe \(Z=26\)"):
        atoms.get_forces()
    ff, atoms = force_field("mace-tiny"), as_atoms(STRUCTURES["molecule"])
    with pytest.raises(ValueError, match="edge_capacity_multiplier must be >= 1"):
        MLIPForceFieldASECalculator(atoms, 0.9, ff)
    with pytest.raises(ValueError, match="node_capacity_multiplier must be >= 1"):
        MLIPForceFieldASECalculator(atoms, 1.25, ff, node_capacity_multiplier=0.5)
