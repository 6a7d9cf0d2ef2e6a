"""Reader for structures already in memory as ``ase.Atoms``."""

from collections.abc import Sequence
from typing import final

import ase

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.data.readers.atoms_conversion import atoms_to_chemical_system
from mlip_eqx.data.readers.labels import check_required_labels
from mlip_eqx.data.readers.reader import ChemicalSystemSplits, ChemicalSystemsReader


@final
class ASEAtomsReader(ChemicalSystemsReader):
    """Builds the splits from lists of ``ase.Atoms``, with the label lookup of
    :func:`~mlip_eqx.data.readers.atoms_conversion.atoms_to_chemical_system`.

    Structures are named "train atoms[i]", "validation atoms[i]" and
    "test atoms[i]" in error messages.
    """

    def __init__(
        self,
        train_atoms: Sequence[ase.Atoms],
        validation_atoms: Sequence[ase.Atoms] | None = None,
        test_atoms: Sequence[ase.Atoms] | None = None,
        *,
        energy_key: str | None = None,
        forces_key: str | None = None,
        stress_key: str | None = None,
        weight_key: str | None = None,
        required_labels: Sequence[str] = ("energy", "forces"),
    ):
        """Creates the reader; the atoms are converted by :meth:`load`.

        Args:
            train_atoms: Training structures; not empty.
            validation_atoms: Validation structures, or None for none.
            test_atoms: Test structures, or None for none.
            energy_key: Info key of the energy in eV (None: default lookup).
            forces_key: Per-atom array key of the forces in eV/Å (None: default).
            stress_key: Info key of the stress in eV/Å³ (None: default lookup).
            weight_key: Info key of the structure weight (None: default lookup).
            required_labels: Labels each structure must have, a subset of
                "energy", "forces", "stress"; ``()`` for unlabeled data.

        Raises:
            ValueError: ``train_atoms`` is empty or a label name is unknown.
            TypeError: An item is not an ``ase.Atoms``.
        """
        self.atoms_by_split = (
            ("train", _checked_atoms(train_atoms, "train")),
            ("validation", _checked_atoms(validation_atoms, "validation")),
            ("test", _checked_atoms(test_atoms, "test")),
        )
        if not self.atoms_by_split[0][1]:
            raise ValueError("ASEAtomsReader: train_atoms must not be empty.")
        self.required_labels = check_required_labels(
            required_labels, "ASEAtomsReader.required_labels"
        )
        self.energy_key = energy_key
        self.forces_key = forces_key
        self.stress_key = stress_key
        self.weight_key = weight_key

    def load(self) -> ChemicalSystemSplits:
        """Converts the atoms.

        Returns:
            The training, validation and test structures, in this order.
        """
        train, validation, test = (
            [
                self._convert(atoms, f"{split} atoms[{index}]")
                for index, atoms in enumerate(atoms_list)
            ]
            for split, atoms_list in self.atoms_by_split
        )
        return train, validation, test

    def _convert(self, atoms: ase.Atoms, source: str) -> ChemicalSystem:
        return atoms_to_chemical_system(
            atoms,
            source,
            required_labels=self.required_labels,
            energy_key=self.energy_key,
            forces_key=self.forces_key,
            stress_key=self.stress_key,
            weight_key=self.weight_key,
        )


def _checked_atoms(
    atoms_list: Sequence[object] | None, split: str
) -> tuple[ase.Atoms, ...]:
    if atoms_list is None:
        return ()
    if isinstance(atoms_list, ase.Atoms):
        raise TypeError(
            f"ASEAtomsReader: {split} atoms must be a list of ase.Atoms, got a "
            "single ase.Atoms."
        )
    for index, atoms in enumerate(atoms_list):
        if not isinstance(atoms, ase.Atoms):
            raise TypeError(
                f"ASEAtomsReader: {split} atoms[{index}] is a "
                f"{type(atoms).__name__}, not an ase.Atoms."
            )
    return tuple(atoms_list)
