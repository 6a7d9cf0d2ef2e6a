"""Data: structures, readers, graph datasets and dataset statistics."""

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
from mlip_eqx.data.readers import (
    ASEAtomsReader,
    ChemicalSystemsReader,
    ChemicalSystemsReaderConfig,
    DatasetIndexReader,
    ExtxyzReader,
    Hdf5Reader,
    MissingLabelError,
    ReplayReader,
)

__all__ = [
    "ASEAtomsReader",
    "ChemicalSystem",
    "ChemicalSystemsReader",
    "ChemicalSystemsReaderConfig",
    "DatasetIndexReader",
    "DatasetInfo",
    "DatasetsHaveNotBeenProcessedError",
    "ExtxyzReader",
    "GraphDataset",
    "GraphDatasetBuilder",
    "GraphDatasetBuilderConfig",
    "Hdf5Reader",
    "InvalidStructureError",
    "MissingLabelError",
    "PaddingEfficiency",
    "ReplayReader",
    "StructureTooLargeError",
    "UnseenElementsError",
]
