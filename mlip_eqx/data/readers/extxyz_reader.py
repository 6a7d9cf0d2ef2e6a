"""Reader for extended XYZ (and plain XYZ) files, through ``ase.io``."""

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import final

import ase
import ase.data
import ase.io
from ase.io.extxyz import XYZError

from mlip_eqx.data.chemical_system import ChemicalSystem, InvalidStructureError
from mlip_eqx.data.readers.atoms_conversion import atoms_to_chemical_system
from mlip_eqx.data.readers.config import ChemicalSystemsReaderConfig
from mlip_eqx.data.readers.reader import (
    ChemicalSystemSplits,
    ChemicalSystemsReader,
    DataDownloadFun,
    load_splits_from_files,
)
from mlip_eqx.utils.progress import track


@final
class ExtxyzReader(ChemicalSystemsReader):
    """Reads extended XYZ or plain XYZ files named in a config.

    Labels are found as described in
    :func:`~mlip_eqx.data.readers.atoms_conversion.atoms_to_chemical_system`: by
    default "REF_energy", "REF_forces", "REF_stress", then "energy", "forces",
    "stress" (which ``ase.io`` stores in a SinglePointCalculator). Weights come from
    the info key "config_weight" or "weight" (default 1.0); cell and pbc from the
    file's ``Lattice`` and ``pbc``.
    """

    def __init__(
        self,
        config: ChemicalSystemsReaderConfig,
        data_download_fun: DataDownloadFun | None = None,
        *,
        energy_key: str | None = None,
        forces_key: str | None = None,
        stress_key: str | None = None,
        weight_key: str | None = None,
    ):
        """Creates the reader; nothing is read before :meth:`load`.

        Args:
            config: The paths, per-path limits and required labels.
            data_download_fun: If given, ``(source, target)`` downloads each path to
                a local temporary file that is read instead.
            energy_key: Info key of the energy in eV (None: default lookup).
            forces_key: Per-atom array key of the forces in eV/Å (None: default).
            stress_key: Info key of the stress in eV/Å³ (None: default lookup).
            weight_key: Info key of the structure weight (None: default lookup).
        """
        self.config = config
        self.data_download_fun = data_download_fun
        self.energy_key = energy_key
        self.forces_key = forces_key
        self.stress_key = stress_key
        self.weight_key = weight_key

    def load(self) -> ChemicalSystemSplits:
        """Reads all files of the config.

        Returns:
            The training, validation and test structures, in this order.
        """
        read_file = functools.partial(
            read_extxyz_file,
            required_labels=self.config.required_labels,
            energy_key=self.energy_key,
            forces_key=self.forces_key,
            stress_key=self.stress_key,
            weight_key=self.weight_key,
        )
        return load_splits_from_files(self.config, read_file, self.data_download_fun)


def read_extxyz_file(
    path: str,
    source: str,
    num_to_load: int | None,
    *,
    required_labels: Sequence[str],
    energy_key: str | None = None,
    forces_key: str | None = None,
    stress_key: str | None = None,
    weight_key: str | None = None,
) -> list[ChemicalSystem]:
    """Reads the first ``num_to_load`` frames (all for None) of an (extended) XYZ file.

    Args:
        path: The local file.
        source: The path as the user named it, for error messages.
        num_to_load: Maximum number of frames to read, or None for all.
        required_labels: Labels each frame must have.
        energy_key: See :func:`atoms_to_chemical_system`.
        forces_key: See :func:`atoms_to_chemical_system`.
        stress_key: See :func:`atoms_to_chemical_system`.
        weight_key: See :func:`atoms_to_chemical_system`.

    Raises:
        ValueError: The file holds no frames.
        InvalidStructureError: A frame cannot be parsed (e.g. an unknown element)
            or is malformed; the message names the file and frame.
    """
    frames = ase.io.iread(path, index=slice(0, num_to_load), format="extxyz")
    systems = []
    with contextlib.closing(frames):
        for frame_index, atoms in track(
            _numbered_frames(frames, source), f"Reading {source}", total=num_to_load
        ):
            systems.append(
                atoms_to_chemical_system(
                    atoms,
                    f"{source}, frame {frame_index}",
                    required_labels=required_labels,
                    energy_key=energy_key,
                    forces_key=forces_key,
                    stress_key=stress_key,
                    weight_key=weight_key,
                )
            )
    if not systems:
        raise ValueError(f"{source}: the file contains no structures.")
    return systems


def _numbered_frames(
    frames: Iterator[ase.Atoms], source: str
) -> Iterator[tuple[int, ase.Atoms]]:
    """Yields (frame index, atoms); a parse error becomes one naming the frame."""
    frame_index = 0
    while True:
        try:
            atoms = next(frames)
        except StopIteration:
            return
        except KeyError as error:
            symbol = error.args[0] if error.args else None
            if isinstance(symbol, str) and symbol not in ase.data.atomic_numbers:
                raise InvalidStructureError(
                    f"{source}, frame {frame_index}: unknown element symbol {symbol!r}."
                ) from error
            raise _parse_error(source, frame_index, error) from error
        except (XYZError, ValueError, IndexError, AssertionError) as error:
            raise _parse_error(source, frame_index, error) from error
        yield frame_index, atoms
        frame_index += 1


def _parse_error(
    source: str, frame_index: int, error: Exception
) -> InvalidStructureError:
    # ase scans all frame headers before it parses frame 0, so an error there may
    # come from any header.
    where = f"frame {frame_index}" if frame_index > 0 else "frame 0 or a frame header"
    return InvalidStructureError(
        f"{source}: cannot parse {where} as extended XYZ: "
        f"{type(error).__name__}: {error}"
    )
