"""Physical laws that every force field obeys, for every network configuration."""

import jax
import numpy as np
import pytest

from mlip_eqx.data.chemical_system import ChemicalSystem
from tests.helpers import physics
from tests.helpers.models import NETWORK_CONFIGS, force_field
from tests.helpers.structures import random_system

NAMES = sorted(NETWORK_CONFIGS)


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def molecule(rng: np.random.Generator, num_atoms: int) -> ChemicalSystem:
    return random_system(rng, num_atoms, periodic=False)


def triclinic_crystal(rng: np.random.Generator, num_atoms: int) -> ChemicalSystem:
    """A periodic structure whose cell is far from orthogonal."""
    system = random_system(rng, num_atoms)
    shear = np.array([[1.0, 0.0, 0.0], [0.35, 1.0, 0.0], [-0.2, 0.25, 1.0]])
    return ChemicalSystem(
        atomic_numbers=system.atomic_numbers,
        positions=system.positions @ shear,
        cell=system.cell @ shear,
        pbc=system.pbc,
    )


@pytest.mark.parametrize("name", NAMES)
def test_invariance_under_rotation_reflection_translation_permutation(name, x64):
    rng = np.random.default_rng(0)
    ff = force_field(name)
    for system in (molecule(rng, 6), triclinic_crystal(rng, 5)):
        for reflect in (False, True):
            physics.check_invariance(ff, system, rng, reflect, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_forces_are_minus_energy_gradient(name, x64):
    rng = np.random.default_rng(1)
    physics.check_forces_are_energy_gradient(
        force_field(name), triclinic_crystal(rng, 4), step=1e-5, rtol=1e-6, atol=1e-8
    )


@pytest.mark.parametrize("name", NAMES)
def test_stress_is_strain_derivative_of_energy(name, x64):
    rng = np.random.default_rng(2)
    physics.check_stress_is_strain_derivative(
        force_field(name), triclinic_crystal(rng, 5), step=1e-6, rtol=1e-6, atol=1e-9
    )


@pytest.mark.parametrize("name", NAMES)
def test_energy_and_forces_continuous_at_cutoff(name, x64):
    physics.check_continuity_at_cutoff(
        force_field(name),
        (29, 47, 79),
        step=1e-4,
        energy_tolerance=1e-9,
        force_tolerance=1e-6,
    )
