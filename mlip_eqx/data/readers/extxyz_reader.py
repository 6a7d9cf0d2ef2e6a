"""Reader for extended XYZ (and plain XYZ) files, through ``ase.io``."""

import contextlib
import functools
import itertools
from collections.abc import Iterator, Sequence
from typing import final

import ase
import ase.data
import ase.io
from ase.io.extxyz import XYZError
from ase.io.formats import open_with_compression

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
            _numbered_frames(frames, path, source, num_to_load),
            f"Reading {source}",
            total=num_to_load,
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
    frames: Iterator[ase.Atoms], path: str, source: str, num_to_load: int | None
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
            raise _parse_error(path, source, num_to_load, frame_index, error) from error
        except (XYZError, ValueError, IndexError, AssertionError) as error:
            raise _parse_error(path, source, num_to_load, frame_index, error) from error
        yield frame_index, atoms
        frame_index += 1


def _parse_error(
    path: str, source: str, num_to_load: int | None, frame_index: int, error: Exception
) -> InvalidStructureError:
    """The error naming the frame that ase could not parse.

    ase reads the atom counts of all frames it will read before it parses frame 0,
    so an error "in frame 0" may come from any frame's header: the headers are then
    scanned here to find that frame.
    """
    if frame_index == 0:
        problem = _first_header_problem(path, num_to_load)
        if problem is not None:
            bad_frame, description = problem
            return InvalidStructureError(f"{source}, frame {bad_frame}: {description}")
    return InvalidStructureError(
        f"{source}, frame {frame_index}: cannot parse as extended XYZ: "
        f"{type(error).__name__}: {error}"
    )


def _first_header_problem(path: str, num_to_load: int | None) -> tuple[int, str] | None:
    """The first frame whose atom count does not fit the file, as ase scans them.

    Each frame is a line with the number of atoms n, a comment line, n atom lines
    and up to 3 "VEC" lines; a blank line or the end of the file ends the frames.

    Returns:
        (frame index, description), or None if the headers of the first
        ``num_to_load + 1`` frames (all frames for None) are consistent.
    """
    previous: tuple[int, int] | None = None  # (atom count, its line number)
    line_number = 0
    with open_with_compression(path, "r") as file:
        for frame_index in itertools.count():
            if num_to_load is not None and frame_index > num_to_load:
                return None
            line = file.readline()
            line_number += 1
            if not line.strip():
                return None
            try:
                num_atoms = int(line)
            except ValueError:
                if previous is None:
                    return 0, (
                        f"line {line_number} should hold the number of atoms, "
                        f"got {_shorten(line)}."
                    )
                count, count_line = previous
                return frame_index - 1, (
                    f"the atom count {count} on line {count_line} does not fit the "
                    f"file: where the next frame should start (line {line_number}) "
                    f"there is {_shorten(line)}, not a number of atoms."
                )
            previous = (num_atoms, line_number)
            lines_to_read = 1 + num_atoms  # the comment line and the atom lines
            for lines_read in range(lines_to_read):
                if not file.readline():
                    return frame_index, (
                        f"the atom count {num_atoms} on line {line_number} does not "
                        f"fit the file: it ends after line {line_number + lines_read}."
                    )
            line_number += lines_to_read
            while True:
                position = file.tell()
                if not file.readline().lstrip().startswith("VEC"):
                    file.seek(position)
                    break
                line_number += 1
    return None


def _shorten(line: str, limit: int = 60) -> str:
    text = line.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")
