"""One atomistic structure on the host, with its reference labels."""

import numbers

import equinox as eqx
import numpy as np
from jaxtyping import Float, Int


class InvalidStructureError(ValueError):
    """A structure (or one of its labels) is malformed; the message names where."""


_PER_ATOM_FIELDS = ("positions", "forces", "partial_charges")


def check_finite(name: str, value: np.ndarray | float | None, source: str) -> None:
    """Raises if ``value`` (None: nothing to check) holds NaN or inf.

    Args:
        name: The field, e.g. "positions"; for per-atom fields ("positions",
            "forces", "partial_charges") the message names the first bad atoms.
        value: The field's value.
        source: Where the structure comes from, for the message.

    Raises:
        InvalidStructureError: The value is not finite.
    """
    if value is None or np.all(np.isfinite(value)):
        return
    where = ""
    if name in _PER_ATOM_FIELDS:
        finite = np.isfinite(value)
        per_atom = finite if finite.ndim == 1 else np.all(finite, axis=-1)
        bad_atoms = np.flatnonzero(~per_atom)
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


def _as_optional_array(value) -> np.ndarray | None:
    return None if value is None else np.asarray(value)


def _as_optional_integer(value) -> object:
    """An integral number as an int (1.0 and numpy integers too); any other
    value unchanged, for ``__check_init__`` to name it in its error."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


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
        config_type: The kind of structure the data set says it is (extxyz
            info key ``config_type``, e.g. "MD" or "IsolatedAtom"), or None.
            Selects per-kind loss weights and marks isolated atoms.
        atomic_species: Features of each atom, shape [n_atoms] or [n_atoms,
            n_features], or None: the original library's (0.1) field, kept for
            code that sets it. Not used to build graphs: species indices come
            from the atomic numbers and the dataset's element table.
        partial_charges: Partial charge of each atom in units of the elementary
            charge e, shape [n_atoms], or None.
        charge: Total charge of the structure, an integer in units of e, or None.
        spin_multiplicity: Spin multiplicity 2S + 1 of the structure, an integer
            >= 1, or None.
        dipole_moment: Dipole moment in e·Å (ASE's unit), shape [3], or None.

    The last four are labels of the original library (0.2); no force field of
    this library predicts them, so losses and metrics ignore them, but readers
    fill them where the data has them and they are validated like the others.
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
    config_type: str | None = eqx.field(static=True, default=None)
    atomic_species: np.ndarray | None = eqx.field(
        default=None, converter=_as_optional_array
    )
    partial_charges: Float[np.ndarray, " n_atoms"] | None = eqx.field(
        default=None, converter=_as_optional_float_array
    )
    charge: int | None = eqx.field(default=None, converter=_as_optional_integer)
    spin_multiplicity: int | None = eqx.field(
        default=None, converter=_as_optional_integer
    )
    dipole_moment: Float[np.ndarray, "3"] | None = eqx.field(
        default=None, converter=_as_optional_float_array
    )

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
        self._check_original_library_fields()
        for name in (
            "positions",
            "energy",
            "forces",
            "stress",
            "cell",
            "weight",
            "partial_charges",
            "dipole_moment",
        ):
            check_finite(name, getattr(self, name), source)
        if self.weight < 0:
            raise InvalidStructureError(
                f"{source}: weight must be >= 0, got {self.weight}."
            )
        if self.dataset_idx < 0:
            raise InvalidStructureError(
                f"{source}: dataset_idx must be >= 0, got {self.dataset_idx}."
            )
        if self.config_type is not None and not isinstance(self.config_type, str):
            raise InvalidStructureError(
                f"{source}: config_type must be a string, got {self.config_type!r}."
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

    def _check_original_library_fields(self) -> None:
        """Shapes and types of the optional fields of the original library."""
        source, n_atoms = self.source, self.atomic_numbers.shape[0]
        species = self.atomic_species
        if species is not None and (
            species.ndim not in (1, 2) or len(species) != n_atoms
        ):
            raise InvalidStructureError(
                f"{source}: atomic_species must have shape [{n_atoms}] or "
                f"[{n_atoms}, n_features], got {species.shape}."
            )
        if self.partial_charges is not None and self.partial_charges.shape != (
            n_atoms,
        ):
            raise InvalidStructureError(
                f"{source}: partial_charges must have shape ({n_atoms},), "
                f"got {self.partial_charges.shape}."
            )
        if self.dipole_moment is not None and self.dipole_moment.shape != (3,):
            raise InvalidStructureError(
                f"{source}: dipole_moment must have shape (3,), "
                f"got {self.dipole_moment.shape}."
            )
        for name in ("charge", "spin_multiplicity"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, int):
                raise InvalidStructureError(
                    f"{source}: {name} must be an integer, got {value!r}."
                )
        if self.spin_multiplicity is not None and self.spin_multiplicity < 1:
            raise InvalidStructureError(
                f"{source}: spin_multiplicity (2S + 1) must be >= 1, "
                f"got {self.spin_multiplicity}."
            )

    @property
    def num_atoms(self) -> int:
        """Number of atoms in the structure."""
        return int(self.atomic_numbers.shape[0])
