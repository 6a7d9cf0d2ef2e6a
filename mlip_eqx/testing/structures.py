"""Random labelled structures for tests."""

import numpy as np

from mlip_eqx.data.chemical_system import ChemicalSystem


def random_system(
    rng: np.random.Generator,
    num_atoms: int,
    elements=(29, 47, 79),
    periodic: bool = True,
    with_stress: bool = True,
    source: str = "random structure",
) -> ChemicalSystem:
    """A random structure with random (not physical) labels.

    Atoms sit on a jittered grid so that no two are closer than about 1.5 Å.
    """
    side = int(np.ceil(num_atoms ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1)
    grid = grid.reshape(-1, 3)[:num_atoms] * 2.5
    positions = grid + rng.uniform(-0.3, 0.3, grid.shape)
    length = side * 2.5
    cell = (
        np.eye(3) * length + rng.uniform(-0.3, 0.3, (3, 3))
        if periodic
        else np.zeros((3, 3))
    )
    stress = rng.normal(size=(3, 3)) * 0.01
    return ChemicalSystem(
        atomic_numbers=rng.choice(elements, num_atoms),
        positions=positions,
        energy=float(rng.normal()),
        forces=rng.normal(size=(num_atoms, 3)),
        stress=(stress + stress.T) / 2 if periodic and with_stress else None,
        cell=cell,
        pbc=np.array([periodic] * 3),
        weight=float(rng.uniform(0.5, 2.0)),
        source=source,
    )


def some_systems(seed: int) -> list[ChemicalSystem]:
    """Two periodic structures (5 and 7 atoms) and a molecule (3 atoms)."""
    rng = np.random.default_rng(seed)
    return [
        random_system(rng, 5),
        random_system(rng, 3, periodic=False),
        random_system(rng, 7),
    ]
