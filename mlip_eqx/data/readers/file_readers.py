"""The reader of a list of data files, chosen by their suffixes."""

import os
from collections.abc import Sequence
from pathlib import Path

from mlip_eqx.data.readers.extxyz_reader import ExtxyzReader
from mlip_eqx.data.readers.hdf5_reader import Hdf5Reader
from mlip_eqx.data.readers.reader import ChemicalSystemsReader

HDF5_SUFFIXES = (".h5", ".hdf5")


def reader_class_for_files(
    paths: Sequence[str | os.PathLike],
) -> type[ExtxyzReader] | type[Hdf5Reader]:
    """:class:`Hdf5Reader` for ``.h5``/``.hdf5`` files, :class:`ExtxyzReader`
    for any other (extxyz and what ASE reads).

    Raises:
        ValueError: If HDF5 and other files are mixed (naming both kinds).
    """
    is_hdf5 = [Path(path).suffix.lower() in HDF5_SUFFIXES for path in paths]
    if any(is_hdf5) and not all(is_hdf5):
        hdf5 = [str(p) for p, h in zip(paths, is_hdf5) if h]
        other = [str(p) for p, h in zip(paths, is_hdf5) if not h]
        raise ValueError(
            f"Use either extxyz or HDF5 files, not both: HDF5 {hdf5}, other {other}."
        )
    return Hdf5Reader if paths and all(is_hdf5) else ExtxyzReader


def reader_for_files(
    train: Sequence[str | os.PathLike],
    valid: Sequence[str | os.PathLike] = (),
    test: Sequence[str | os.PathLike] = (),
    required_labels: tuple[str, ...] = ("energy", "forces"),
    *,
    energy_key: str | None = None,
    forces_key: str | None = None,
    stress_key: str | None = None,
) -> ChemicalSystemsReader:
    """The reader of these splits' files (one kind for all, see
    :func:`reader_class_for_files`); empty splits are None in its config.

    The label keys (None: each reader's default lookup) name an info/arrays key
    of an extxyz file, or an attribute (energy) or dataset (forces, stress) of
    an HDF5 group.
    """
    reader_class = reader_class_for_files([*train, *valid, *test])
    return reader_class(
        reader_class.Config(
            train_dataset_paths=[str(path) for path in train],
            valid_dataset_paths=[str(path) for path in valid] or None,
            test_dataset_paths=[str(path) for path in test] or None,
            required_labels=required_labels,
        ),
        energy_key=energy_key,
        forces_key=forces_key,
        stress_key=stress_key,
    )
