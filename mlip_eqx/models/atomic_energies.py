"""Reference energies E0 per species, as chosen in a model config."""

from collections.abc import Mapping
from typing import Literal

import numpy as np
from ase.data import chemical_symbols

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.utils.config import ConfigError

AtomicEnergiesChoice = Literal["average", "zero"] | dict[int, float] | None


def atomic_energies_per_species(
    choice: AtomicEnergiesChoice, dataset_info: DatasetInfo, num_species: int
) -> np.ndarray:
    """The E0 of every data set and species index in eV.

    Args:
        choice: None or "average" for the dataset's fitted E0 (one row per data
            set of the DatasetInfo), "zero" for none, or a {Z: eV} map that must
            cover every element of the dataset (the same for every data set).
        dataset_info: Gives the element table (species index i is the i-th smallest
            atomic number), the data sets and their fitted E0.
        num_species: Number of species slots of the model (>= number of elements);
            slots beyond the dataset's elements get 0.

    Returns:
        Array of shape [num_datasets, num_species], float64.
    """
    elements = dataset_info.allowed_atomic_numbers
    if len(elements) > num_species:
        raise ValueError(
            f"num_species={num_species} is smaller than the {len(elements)} elements "
            "of the dataset."
        )
    energies = np.zeros((dataset_info.num_datasets, num_species), dtype=np.float64)
    if choice == "zero":
        return energies
    sources: tuple[Mapping[int, float], ...]
    if choice in (None, "average"):
        sources = dataset_info.atomic_energies_maps
    else:
        sources = (choice,) * dataset_info.num_datasets
    missing = [z for z in elements if z not in sources[0]]
    if missing:
        names = ", ".join(chemical_symbols[z] for z in missing)
        raise ValueError(f"atomic_energies: no energy given for {names}.")
    for row, source in zip(energies, sources):
        row[: len(elements)] = [source[z] for z in elements]
    return energies


def with_float_energies(choice: object) -> object:
    """The choice with integer energies of a {Z: eV} map converted to floats (so
    that the config's type check accepts them); other values are returned as
    they are."""
    if not isinstance(choice, dict):
        return choice
    return {
        z: float(energy)
        if isinstance(energy, int) and not isinstance(energy, bool)
        else energy
        for z, energy in choice.items()
    }


def check_atomic_numbers(choice: AtomicEnergiesChoice, field: str) -> None:
    """Raises a ConfigError naming ``field`` (e.g. "MaceConfig.atomic_energies")
    if a {Z: eV} map has keys that are not atomic numbers."""
    if isinstance(choice, dict):
        bad = [z for z in choice if not 1 <= z <= 118]
        if bad:
            raise ConfigError(f"{field}: {bad} are not atomic numbers.")
