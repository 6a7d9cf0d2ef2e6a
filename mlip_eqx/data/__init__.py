"""Data: structures, readers, graph datasets and dataset statistics."""

from mlip_eqx.data.atomic_energies import AtomicEnergiesError
from mlip_eqx.data.chemical_system import ChemicalSystem, InvalidStructureError
from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.data.graph_dataset import (
    GraphDataset,
    PaddingEfficiency,
    StructureTooLargeError,
)
from mlip_eqx.data.graph_dataset_builder import (
    DatasetsHaveNotBeenProcessedError,
    GraphDatasetBuilder,
    GraphDatasetBuilderConfig,
    UnseenElementsError,
)
from mlip_eqx.data.isolated_atoms import IsolatedAtomError
from mlip_eqx.data.readers import (
    ASEAtomsReader,
    ChemicalSystemsReader,
    ChemicalSystemsReaderConfig,
    ConfigTypeWeightsReader,
    DatasetIndexReader,
    ExtxyzReader,
    Hdf5Reader,
    MissingLabelError,
    ReplayReader,
)

__all__ = [
    "ASEAtomsReader",
    "AtomicEnergiesError",
    "ChemicalSystem",
    "ChemicalSystemsReader",
    "ChemicalSystemsReaderConfig",
    "ConfigTypeWeightsReader",
    "DatasetIndexReader",
    "DatasetInfo",
    "DatasetsHaveNotBeenProcessedError",
    "ExtxyzReader",
    "GraphDataset",
    "GraphDatasetBuilder",
    "GraphDatasetBuilderConfig",
    "Hdf5Reader",
    "InvalidStructureError",
    "IsolatedAtomError",
    "MissingLabelError",
    "PaddingEfficiency",
    "ReplayReader",
    "StructureTooLargeError",
    "UnseenElementsError",
]
