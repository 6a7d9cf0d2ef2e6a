"""DatasetIndexReader: a reader's structures assigned to one data set (the
readout head and reference energies of a multi-head model)."""

import equinox as eqx

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.data.readers.reader import ChemicalSystemSplits, ChemicalSystemsReader


def in_dataset(systems: list[ChemicalSystem], dataset_idx: int) -> list[ChemicalSystem]:
    """The structures with ``dataset_idx`` set (>= 0)."""
    if dataset_idx < 0:
        raise ValueError(f"dataset_idx must be >= 0, got {dataset_idx}.")
    return [
        eqx.tree_at(lambda system: system.dataset_idx, system, dataset_idx)
        for system in systems
    ]


class DatasetIndexReader(ChemicalSystemsReader):
    """The splits of another reader, every structure in data set ``dataset_idx``
    (e.g. the new data of a fine-tuning run with a new readout head)."""

    def __init__(self, reader: ChemicalSystemsReader, dataset_idx: int):
        """Args:
        reader: Gives the structures.
        dataset_idx: Their data set, >= 0.
        """
        if dataset_idx < 0:
            raise ValueError(
                f"DatasetIndexReader: dataset_idx must be >= 0, got {dataset_idx}."
            )
        self.reader = reader
        self.dataset_idx = dataset_idx

    def load(self) -> ChemicalSystemSplits:
        """The reader's splits, with ``dataset_idx`` set."""
        train, validation, test = self.reader.load()
        return (
            in_dataset(train, self.dataset_idx),
            in_dataset(validation, self.dataset_idx),
            in_dataset(test, self.dataset_idx),
        )
