"""Reader for HDF5 files holding one group per structure."""

import contextlib
import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import final

import h5py
import numpy as np

from mlip_eqx.data.chemical_system import ChemicalSystem, InvalidStructureError
from mlip_eqx.data.readers.config import ChemicalSystemsReaderConfig
from mlip_eqx.data.readers.labels import (
    MissingLabelError,
    check_label_magnitudes,
    numeric_array,
    scalar,
    stress_as_3x3,
)
from mlip_eqx.data.readers.reader import (
    ChemicalSystemSplits,
    ChemicalSystemsReader,
    DataDownloadFun,
    load_splits_from_files,
)
from mlip_eqx.utils.progress import track

WEIGHT_ATTRIBUTES = ("config_weight", "weight")


@final
class Hdf5Reader(ChemicalSystemsReader):
    """Reads HDF5 files named in a config, one top-level group per structure.

    Each group holds the datasets ``positions`` [n_atoms, 3] in Å and ``elements``
    [n_atoms] (atomic numbers, integers), and optionally ``forces`` [n_atoms, 3] in
    eV/Å, ``stress`` (6 Voigt values xx yy zz yz xz xy, 9 values or [3, 3]) in eV/Å³,
    ``cell`` [3, 3] in Å (lattice vectors as rows; zeros if absent) and ``pbc`` [3]
    (booleans; all False if absent); its attribute ``energy`` is the total energy in
    eV and its attribute ``config_weight`` or ``weight`` the weight (1.0 if absent).
    The original library's optional labels are read where present: the dataset
    ``partial_charges`` [n_atoms] (e), the attributes ``charge`` (e) and
    ``spin_multiplicity``, and ``dipole_moment`` [3] (e·Å, an attribute or a
    dataset). A string attribute ``config_type`` becomes the structure's
    ``config_type``. The label names can be changed (``energy_key``,
    ``forces_key``, ``stress_key``); a one-atom structure needs no forces.
    Groups are read in the file's iteration order (alphabetical by name unless the
    file tracks creation order); other top-level items are ignored; other datasets
    and attributes of a group are ignored.
    """

    def __init__(
        self,
        config: ChemicalSystemsReaderConfig,
        data_download_fun: DataDownloadFun | None = None,
        *,
        energy_key: str | None = None,
        forces_key: str | None = None,
        stress_key: str | None = None,
    ):
        """Creates the reader; nothing is read before :meth:`load`.

        Args:
            config: The paths, per-path limits and required labels.
            data_download_fun: If given, ``(source, target)`` downloads each path to
                a local temporary file that is read instead.
            energy_key: Attribute of the energy in eV (None: "energy").
            forces_key: Dataset of the forces in eV/Å (None: "forces").
            stress_key: Dataset of the stress in eV/Å³ (None: "stress").
        """
        self.config = config
        self.data_download_fun = data_download_fun
        self.label_keys = {
            "energy": energy_key or "energy",
            "forces": forces_key or "forces",
            "stress": stress_key or "stress",
        }

    def load(self) -> ChemicalSystemSplits:
        """Reads all files of the config.

        Returns:
            The training, validation and test structures, in this order.
        """
        read_file = functools.partial(
            read_hdf5_file,
            required_labels=self.config.required_labels,
            label_keys=self.label_keys,
        )
        return load_splits_from_files(self.config, read_file, self.data_download_fun)


def read_hdf5_file(
    path: str,
    source: str,
    num_to_load: int | None,
    *,
    required_labels: Sequence[str],
    label_keys: Mapping[str, str] | None = None,
) -> list[ChemicalSystem]:
    """Reads the first ``num_to_load`` structure groups (all for None) of an HDF5 file.

    Args:
        path: The local file.
        source: The path as the user named it, for error messages.
        num_to_load: Maximum number of structures to read, or None for all.
        required_labels: Labels each structure must have.
        label_keys: The attribute of "energy" and the datasets of "forces" and
            "stress" (each defaults to the label's name).

    Raises:
        ValueError: The file is not HDF5, is corrupt, is empty (0 bytes or only
            whitespace) or holds no structure groups.
        MissingLabelError: A group lacks a required label.
        InvalidStructureError: A group lacks positions or elements, is malformed,
            or cannot be read (a corrupt file); the message names the group and key.
    """
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        if _is_blank(path):
            raise ValueError(
                f"{source}: the file is empty (or only whitespace): it contains no "
                "structures."
            ) from error
        raise ValueError(f"{source}: cannot open as HDF5: {error}") from error
    with file, _hdf5_errors(source, ValueError):
        names = [name for name in file if file.get(name, getclass=True) is h5py.Group]
        if not names:
            raise ValueError(f"{source}: the file contains no structure groups.")
        keys = {label: label for label in ("energy", "forces", "stress")}
        keys.update(label_keys or {})
        return [
            _group_to_chemical_system(
                file[name], f"{source}, group '{name}'", required_labels, keys
            )
            for name in track(names[:num_to_load], f"Reading {source}")
        ]


def _is_blank(path: str, chunk_size: int = 1 << 20) -> bool:
    """Whether the file at ``path`` holds nothing but whitespace (or nothing)."""
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            if chunk.strip():
                return False
    return True


@contextlib.contextmanager
def _hdf5_errors(where: str, error_type: type[ValueError]) -> Iterator[None]:
    """Turns h5py's errors (a corrupt or truncated file) into ``error_type``
    naming ``where`` (file, group, key)."""
    try:
        yield
    except (OSError, RuntimeError, KeyError, UnicodeDecodeError) as error:
        raise error_type(
            f"{where}: cannot read the HDF5 data, the file may be corrupt or "
            f"truncated ({type(error).__name__}: {error})."
        ) from error


def _group_to_chemical_system(
    group: h5py.Group,
    source: str,
    required_labels: Sequence[str],
    keys: Mapping[str, str],
) -> ChemicalSystem:
    with _hdf5_errors(source, InvalidStructureError):
        system = _read_group(group, source, required_labels, keys)
    check_label_magnitudes(
        system,
        {
            "energy": f"{source}, attribute '{keys['energy']}'",
            "forces": f"{source}, dataset '{keys['forces']}'",
            "stress": f"{source}, dataset '{keys['stress']}'",
        },
    )
    return system


def _read_group(
    group: h5py.Group,
    source: str,
    required_labels: Sequence[str],
    keys: Mapping[str, str],
) -> ChemicalSystem:
    elements = group.get("elements")
    if isinstance(elements, h5py.Dataset) and elements.shape == (1,):
        required_labels = [label for label in required_labels if label != "forces"]
    for label in required_labels:
        is_attribute = label == "energy"
        if keys[label] not in (group.attrs if is_attribute else group):
            kind = "attribute" if is_attribute else "dataset"
            raise MissingLabelError(
                f"{source}: required label '{label}' is missing ({kind} "
                f"'{keys[label]}'). The group has attributes {_listed(group.attrs)}; "
                f"datasets {_listed(group)}."
            )
    energy = None
    if keys["energy"] in group.attrs:
        energy = scalar(
            group.attrs[keys["energy"]], f"{source}, attribute '{keys['energy']}'"
        )
    forces = _dataset(group, keys["forces"], source, required=False)
    stress = _dataset(group, keys["stress"], source, required=False)
    cell = _dataset(group, "cell", source, required=False)
    pbc = _dataset(group, "pbc", source, required=False, kinds="biu")
    weight = 1.0
    for name in WEIGHT_ATTRIBUTES:
        if name in group.attrs:
            weight = scalar(group.attrs[name], f"{source}, attribute '{name}'")
            break
    return ChemicalSystem(
        atomic_numbers=_dataset(group, "elements", source, required=True, kinds="iu"),
        positions=_dataset(group, "positions", source, required=True),
        energy=energy,
        forces=forces,
        stress=None
        if stress is None
        else stress_as_3x3(stress, f"{source}, dataset '{keys['stress']}'"),
        cell=np.zeros((3, 3)) if cell is None else cell,
        pbc=np.zeros(3, dtype=bool) if pbc is None else pbc,
        weight=weight,
        source=source,
        config_type=_config_type(group, source),
        **_optional_labels(group, source),
    )


def _listed(keys: Iterable[str]) -> str:
    names = sorted(keys)
    return ", ".join(repr(name) for name in names) if names else "none"


def _config_type(group: h5py.Group, source: str) -> str | None:
    """The attribute ``config_type`` as a string, or None if absent."""
    if "config_type" not in group.attrs:
        return None
    value = group.attrs["config_type"]
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str):
        raise InvalidStructureError(
            f"{source}, attribute 'config_type': expected a string, got {value!r}."
        )
    return value


def _optional_labels(group: h5py.Group, source: str) -> dict[str, object]:
    """The original library's optional labels that ``group`` holds."""
    found: dict[str, object] = {}
    for name in ("charge", "spin_multiplicity", "dipole_moment"):
        if name in group.attrs:
            where = f"{source}, attribute '{name}'"
            found[name] = numeric_array(group.attrs[name], where)
    for name in ("partial_charges", "dipole_moment"):
        if name in group and name not in found:
            found[name] = _dataset(group, name, source, required=False)
    return found


def _dataset(
    group: h5py.Group, key: str, source: str, *, required: bool, kinds: str = "iuf"
) -> np.ndarray | None:
    """The numeric dataset ``key`` of ``group``, or None if it is absent."""
    where = f"{source}, dataset '{key}'"
    if key not in group:
        if not required:
            return None
        raise InvalidStructureError(f"{source}: dataset '{key}' is missing.")
    with _hdf5_errors(where, InvalidStructureError):
        item = group[key]
        if not isinstance(item, h5py.Dataset):
            raise InvalidStructureError(f"{where}: expected a dataset, got a group.")
        value = item[()]
    return numeric_array(value, where, kinds)
