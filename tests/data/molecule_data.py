"""Small labelled molecules and isolated atoms for the reference-energy tests."""

import ase
import numpy as np

from mlip_eqx.data import ASEAtomsReader, GraphDatasetBuilder

# Isolated-atom energies (eV) and the binding energy per bond-free "atom" of the
# molecules, so that least squares would not give these E0s.
ISOLATED = {1: -13.5, 6: -1025.0, 8: -2035.0}
BINDING_PER_ATOM = -4.5


def molecule(rng, numbers, config_type=None):
    """A labelled, non-periodic molecule (atoms about 1.5 Å apart)."""
    positions = np.arange(len(numbers))[:, None] * np.array([1.5, 0, 0])
    atoms = ase.Atoms(numbers=numbers, positions=positions + rng.normal(0, 0.05, 3))
    energy = sum(ISOLATED[z] for z in numbers) + BINDING_PER_ATOM * len(numbers)
    atoms.info["REF_energy"] = energy + rng.normal(0, 0.01)
    atoms.arrays["REF_forces"] = rng.normal(size=(len(numbers), 3))
    if config_type is not None:
        atoms.info["config_type"] = config_type
    return atoms


def isolated_atom(z, energy=None, config_type=None, **atoms_options):
    atoms = ase.Atoms(numbers=[z], **atoms_options)
    atoms.info["REF_energy"] = ISOLATED[z] if energy is None else energy
    if config_type is not None:
        atoms.info["config_type"] = config_type
    return atoms


def molecules(seed=0, count=12):
    rng = np.random.default_rng(seed)
    compositions = ([6, 6, 8, 1, 1, 1, 1, 1, 1], [6, 8, 1, 1, 1, 1])
    return [molecule(rng, compositions[i % 2]) for i in range(count)]


def build(train, validation=None, **builder_options):
    config = GraphDatasetBuilder.Config(
        graph_cutoff_angstrom=3.0,
        batch_size=4,
        validation_fraction=0.2 if validation is None else 0.0,
    )
    builder = GraphDatasetBuilder(
        ASEAtomsReader(train, validation), config, **builder_options
    )
    builder.prepare_datasets()
    return builder
