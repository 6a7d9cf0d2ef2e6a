"""One atomistic structure on the host, with its reference labels."""

import dataclasses

import equinox as eqx
import numpy as np
from jaxtyping import Float, Int


class InvalidStructureError(ValueError):
    """A structure (or one of its labels) is malformed; the message names where."""


_PER_ATOM_FIELDS = ("positions", "forces")


def check_finite(name: str, value: np.ndarray | float | None, source: str) -> None:
    """Raises if ``value`` (None: nothing to check) holds NaN or inf.

    Args:
        name: The field, e.g. "positions"; for per-atom fields ("positions",
            "forces") the message names the first bad atoms.
        value: The field's value.
        source: Where the structure comes from, for the message.

    Raises:
        InvalidStructureError: The value is not finite.
    """
    if value is None or np.all(np.isfinite(value)):
        return
    where = ""
    if name in _PER_ATOM_FIELDS:
        bad_atoms = np.flatnonzero(~np.all(np.isfinite(value), axis=-1))
        shown = ", ".join(str(int(index)) for index in bad_atoms[:10])
        more = f", ... ({bad_atoms.size} in all)" if bad_atoms.size > 10 else ""
        where = f" (atoms {shown}{more})"
    raise InvalidStructureError(f"{source}: {name} contains NaN or inf values{where}.")


def _as_int_array(value) -> np.ndarray:
    return np.asarray(value, dtype=np.int64)


def _as_float_array(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _as_cell(value) -> np.ndarray:
    return np.zeros((3, 3)) if value is None else _as_float_array(value)


def _as_pbc(value) -> tuple[bool, ...]:
    flags = np.asarray(False if value is None else value, dtype=bool).reshape(-1)
    if flags.size == 1:
        flags = np.repeat(flags, 3)
    return tuple(bool(flag) for flag in flags)


def _as_optional_float_array(value) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float64)


def _as_optional_float(value) -> float | None:
    return None if value is None else float(value)


class ChemicalSystem(eqx.Module):
    """A single structure with optional labels, held as numpy arrays.

    A label that the data does not provide is ``None`` (never zero), so that losses
    and metrics can ignore it.

    Attributes:
        atomic_numbers: Atomic numbers Z, shape [n_atoms].
        positions: Cartesian positions in Å, shape [n_atoms, 3].
        energy: Total energy in eV, or None.
        forces: Forces in eV/Å, shape [n_atoms, 3], or None.
        stress: Stress in eV/Å³ (ASE sign convention), shape [3, 3], or None.
        cell: Lattice vectors as rows in Å, shape [3, 3]; zeros when there is none
            (None is accepted for that).
        pbc: Periodicity along each lattice vector, a tuple of 3 bools (so that
            ``system.pbc == (True, True, False)`` works); any 3 booleans are
            accepted, a single bool stands for all three and None for
            ``(False, False, False)``. Use ``np.asarray(system.pbc)`` for an array.
        weight: Weight of this structure in the loss (dimensionless, >= 0).
        dataset_idx: Index of the data set the structure belongs to (>= 0): it
            selects the readout head and reference energies of a multi-head
            model (see :class:`~mlip_eqx.data.dataset_info.DatasetInfo`); 0 for
            a single data set.
        source: Where the structure came from, e.g. ``"data.xyz, frame 3"``; used in
            error messages.
        atomic_species: Accepted and ignored, for code written for the original
            library's ChemicalSystem (species indices are made when graphs are
            built, from the dataset's element table); not stored.
    """

    atomic_numbers: Int[np.ndarray, " n_atoms"] = eqx.field(converter=_as_int_array)
    positions: Float[np.ndarray, "n_atoms 3"] = eqx.field(converter=_as_float_array)
    energy: float | None = eqx.field(default=None, converter=_as_optional_float)
    forces: Float[np.ndarray, "n_atoms 3"] | None = eqx.field(
        default=None, converter=_as_optional_float_array
    )
    stress: Float[np.ndarray, "3 3"] | None = eqx.field(
        default=None, converter=_as_optional_float_array
    )
    cell: Float[np.ndarray, "3 3"] = eqx.field(
        default_factory=lambda: np.zeros((3, 3)), converter=_as_cell
    )
    pbc: tuple[bool, ...] = eqx.field(
        static=True, default=(False, False, False), converter=_as_pbc
    )
    weight: float = eqx.field(default=1.0, converter=float)
    dataset_idx: int = eqx.field(default=0, converter=int)
    source: str = eqx.field(static=True, default="structure")
    atomic_species: dataclasses.InitVar[object] = None

    def __post_init__(self, atomic_species: object) -> None:
        del atomic_species  # see the class docstring

    def __check_init__(self) -> None:
        source = self.source
        n_atoms = self.atomic_numbers.shape[0]
        if self.atomic_numbers.ndim != 1:
            raise InvalidStructureError(
                f"{source}: atomic_numbers must have shape [n_atoms], "
                f"got {self.atomic_numbers.shape}."
            )
        if n_atoms == 0:
            raise InvalidStructureError(f"{source}: the structure has no atoms.")
        bad_z = self.atomic_numbers[
            (self.atomic_numbers < 1) | (self.atomic_numbers > 118)
        ]
        if bad_z.size:
            raise InvalidStructureError(
                f"{source}: invalid atomic numbers {sorted(set(bad_z.tolist()))}."
            )
        if self.positions.shape != (n_atoms, 3):
            raise InvalidStructureError(
                f"{source}: positions must have shape ({n_atoms}, 3), "
                f"got {self.positions.shape}."
            )
        if self.forces is not None and self.forces.shape != (n_atoms, 3):
            raise InvalidStructureError(
                f"{source}: forces must have shape ({n_atoms}, 3), "
                f"got {self.forces.shape}."
            )
        if self.stress is not None and self.stress.shape != (3, 3):
            raise InvalidStructureError(
                f"{source}: stress must have shape (3, 3), got {self.stress.shape}."
            )
        if self.cell.shape != (3, 3):
            raise InvalidStructureError(
                f"{source}: cell must have shape (3, 3), got {self.cell.shape}."
            )
        if len(self.pbc) != 3:
            raise InvalidStructureError(
                f"{source}: pbc must have 3 entries, got {len(self.pbc)}."
            )
        for name in ("positions", "energy", "forces", "stress", "cell", "weight"):
            check_finite(name, getattr(self, name), source)
        if self.weight < 0:
            raise InvalidStructureError(
                f"{source}: weight must be >= 0, got {self.weight}."
            )
        if self.dataset_idx < 0:
            raise InvalidStructureError(
                f"{source}: dataset_idx must be >= 0, got {self.dataset_idx}."
            )
        if np.any(self.pbc):
            periodic_vectors = self.cell[np.asarray(self.pbc)]
            if np.linalg.matrix_rank(periodic_vectors, tol=1e-8) < len(
                periodic_vectors
            ):
                raise InvalidStructureError(
                    f"{source}: pbc={list(self.pbc)} needs non-zero, linearly "
                    f"independent lattice vectors, got cell {self.cell.tolist()}."
                )
        if self.stress is not None and abs(np.linalg.det(self.cell)) < 1e-8:
            raise InvalidStructureError(
                f"{source}: a stress label needs a cell with non-zero volume."
            )

    @property
    def num_atoms(self) -> int:
        """Number of atoms in the structure."""
        return int(self.atomic_numbers.shape[0])
