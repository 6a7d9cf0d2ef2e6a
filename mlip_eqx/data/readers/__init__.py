"""Readers that turn data files (or ase.Atoms) into lists of ChemicalSystem."""

from mlip_eqx.data.readers.ase_atoms_reader import ASEAtomsReader
from mlip_eqx.data.readers.atoms_conversion import atoms_to_chemical_system
from mlip_eqx.data.readers.config import ChemicalSystemsReaderConfig
from mlip_eqx.data.readers.config_type_weights import ConfigTypeWeightsReader
from mlip_eqx.data.readers.dataset_index_reader import DatasetIndexReader
from mlip_eqx.data.readers.extxyz_reader import ExtxyzReader
from mlip_eqx.data.readers.hdf5_reader import Hdf5Reader
from mlip_eqx.data.readers.labels import MissingLabelError
from mlip_eqx.data.readers.reader import ChemicalSystemsReader, DataDownloadFun
from mlip_eqx.data.readers.replay_reader import ReplayReader

__all__ = [
    "ASEAtomsReader",
    "ChemicalSystemsReader",
    "ChemicalSystemsReaderConfig",
    "ConfigTypeWeightsReader",
    "DatasetIndexReader",
    "DataDownloadFun",
    "ExtxyzReader",
    "Hdf5Reader",
    "MissingLabelError",
    "ReplayReader",
    "atoms_to_chemical_system",
]
