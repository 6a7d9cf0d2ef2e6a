"""Small periodic structures for the simulation tests (tiny MACE, cutoff 4 Å)."""

import ase
import numpy as np
from ase.md.velocitydistribution import Stationary, thermalize_momenta


def jittered_cell(seed: int, side: int = 4, spacing: float = 2.5) -> ase.Atoms:
    """``side**3`` atoms (Cu, Ag, Au) on a jittered grid in a slightly
    triclinic periodic cell about ``side * spacing`` Å wide."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1)
    grid = grid.reshape(-1, 3) * spacing
    return ase.Atoms(
        numbers=rng.choice([29, 47, 79], len(grid)),
        positions=grid + rng.uniform(-0.2, 0.2, grid.shape),
        cell=np.eye(3) * side * spacing + rng.uniform(-0.3, 0.3, (3, 3)),
        pbc=True,
    )


def with_velocities(atoms: ase.Atoms, temperature_kelvin: float, seed: int):
    """A copy of the atoms with Maxwell-Boltzmann velocities (zero momentum)."""
    atoms = atoms.copy()
    thermalize_momenta(atoms, temperature_kelvin, rng=np.random.default_rng(seed))
    Stationary(atoms)
    return atoms
