"""ChemicalSystems as ``ase.Atoms``, and structures of every periodicity."""

import ase
import numpy as np

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.testing.structures import random_system


def as_atoms(system: ChemicalSystem) -> ase.Atoms:
    """The structure's atoms, positions, cell and pbc (no labels)."""
    return ase.Atoms(
        numbers=system.atomic_numbers,
        positions=system.positions,
        cell=system.cell,
        pbc=system.pbc,
    )


def as_system(atoms: ase.Atoms) -> ChemicalSystem:
    """The atoms' structure (no labels) as a ChemicalSystem."""
    return ChemicalSystem(
        atomic_numbers=atoms.numbers,
        positions=atoms.positions,
        cell=atoms.cell.array,
        pbc=atoms.pbc,
    )


def random_slab(rng: np.random.Generator, num_atoms: int) -> ChemicalSystem:
    """A random structure periodic along a and b, with vacuum along c (mixed pbc)."""
    system = random_system(rng, num_atoms)
    cell = system.cell.copy()
    cell[2] = [0.4, -0.3, 14.0]
    return ChemicalSystem(
        atomic_numbers=system.atomic_numbers,
        positions=system.positions + [0.0, 0.0, 3.0],
        cell=cell,
        pbc=(True, True, False),
    )


def structures_of_every_periodicity(seed: int) -> dict[str, ChemicalSystem]:
    """A triclinic periodic cell (8 atoms), a slab (6 atoms) and a molecule (5)."""
    rng = np.random.default_rng(seed)
    return {
        "periodic": random_system(rng, 8, with_stress=False),
        "slab": random_slab(rng, 6),
        "molecule": random_system(rng, 5, periodic=False),
    }
