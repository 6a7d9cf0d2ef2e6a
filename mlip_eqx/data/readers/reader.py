"""The reader interface and the file handling shared by file-based readers."""

import abc
import logging
import os
import tempfile
from collections.abc import Callable

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.data.readers.config import ChemicalSystemsReaderConfig

logger = logging.getLogger("mlip_eqx")

ChemicalSystemSplits = tuple[
    list[ChemicalSystem], list[ChemicalSystem], list[ChemicalSystem]
]
DataDownloadFun = Callable[[str, str], None]
# (local_path, source, num_to_load) -> the structures of that file.
ReadFileFun = Callable[[str, str, int | None], list[ChemicalSystem]]


class ChemicalSystemsReader(abc.ABC):
    """Reads structures into train, validation and test lists of ChemicalSystem."""

    Config = ChemicalSystemsReaderConfig

    @abc.abstractmethod
    def load(self) -> ChemicalSystemSplits:
        """Reads the data.

        Returns:
            The training, validation and test structures, in this order.
        """


def load_splits_from_files(
    config: ChemicalSystemsReaderConfig,
    read_file: ReadFileFun,
    data_download_fun: DataDownloadFun | None = None,
) -> ChemicalSystemSplits:
    """Reads every path of ``config`` with ``read_file``, split by split.

    Args:
        config: The paths and per-path limits of each split.
        read_file: Reads one local file: ``(local_path, source, num_to_load)`` where
            ``source`` is the path as the user gave it, for error messages.
        data_download_fun: If given, ``(source, target)`` copies the remote file
            ``source`` to the local path ``target`` (in a temporary directory that is
            removed after reading).

    Returns:
        The training, validation and test structures; the structures of several
        paths of one split are concatenated in path order.
    """
    splits = (
        ("train", config.train_dataset_paths, config.train_num_to_load),
        ("validation", config.valid_dataset_paths, config.valid_num_to_load),
        ("test", config.test_dataset_paths, config.test_num_to_load),
    )
    loaded = []
    for split_name, paths, num_to_load in splits:
        systems: list[ChemicalSystem] = []
        for path in paths:
            systems.extend(_read_path(path, num_to_load, read_file, data_download_fun))
        if paths:
            logger.info("Loaded %d %s structures.", len(systems), split_name)
        loaded.append(systems)
    return loaded[0], loaded[1], loaded[2]


def _read_path(
    source: str,
    num_to_load: int | None,
    read_file: ReadFileFun,
    data_download_fun: DataDownloadFun | None,
) -> list[ChemicalSystem]:
    if data_download_fun is None:
        _check_is_file(source, source)
        return read_file(source, source, num_to_load)
    with tempfile.TemporaryDirectory() as directory:
        file_name = os.path.basename(source.rstrip("/")) or "dataset"
        target = os.path.join(directory, file_name)
        data_download_fun(source, target)
        _check_is_file(target, f"{source} (downloaded to {target})")
        return read_file(target, source, num_to_load)


def _check_is_file(path: str, description: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such data file: {description}")
    if not os.path.isfile(path):
        raise IsADirectoryError(f"Not a file: {description}")
