"""Label names, label errors and label layouts shared by the readers."""

from collections.abc import Mapping, Sequence

import numpy as np
from ase.stress import voigt_6_to_full_3x3_stress
from jaxtyping import Float

from mlip_eqx.data.chemical_system import ChemicalSystem, InvalidStructureError

LABEL_NAMES = ("energy", "forces", "stress")

# Labels beyond these are not physical (a unit mix-up or a corrupt file) and are an
# error. Energies are total energies, so the limit is per atom and above any all-
# electron energy (about 2e6 eV for the heaviest elements); forces and stresses
# this large would blow up any training run.
MAX_ABS_ENERGY_PER_ATOM = 1e7  # eV
MAX_ABS_FORCE_COMPONENT = 1e4  # eV/Å
MAX_ABS_STRESS_COMPONENT = 1e4  # eV/Å³ (1.6e6 GPa)


class MissingLabelError(ValueError):
    """A structure lacks a label that the reader was told to require."""


def check_required_labels(
    required_labels: Sequence[str], where: str
) -> tuple[str, ...]:
    """Returns ``required_labels`` as a tuple after checking every name.

    Args:
        required_labels: Label names, each one of ``LABEL_NAMES``.
        where: What holds the value, for the error message.

    Raises:
        ValueError: A name is not a label name, or a single string was given.
    """
    if isinstance(required_labels, str):
        raise ValueError(
            f"{where}: expected a tuple of label names such as ('energy', 'forces'), "
            f"got the string {required_labels!r}."
        )
    unknown = [label for label in required_labels if label not in LABEL_NAMES]
    if unknown:
        raise ValueError(
            f"{where}: unknown label name(s) {unknown}; choose from {LABEL_NAMES}."
        )
    return tuple(required_labels)


def numeric_array(value: object, where: str, kinds: str = "iuf") -> np.ndarray:
    """Returns ``value`` as a numpy array, checking that it holds numbers.

    Args:
        value: The raw value read from a file or an ``ase.Atoms``.
        where: Where the value was found (file, frame, key), for the error message.
        kinds: Accepted numpy dtype kinds ("b" bool, "i"/"u" integer, "f" float).

    Raises:
        InvalidStructureError: The value is not an array of the accepted kinds.
    """
    array = np.asarray(value)
    if array.dtype.kind not in kinds:
        raise InvalidStructureError(
            f"{where}: expected numbers, got {value!r} (dtype {array.dtype})."
        )
    return array


def scalar(value: object, where: str) -> float:
    """Returns ``value`` as a float, checking that it is a single number.

    Args:
        value: The raw value (a number or an array with one element).
        where: Where the value was found (file, frame, key), for the error message.

    Raises:
        InvalidStructureError: The value is not exactly one number.
    """
    array = numeric_array(value, where)
    if array.size != 1:
        raise InvalidStructureError(
            f"{where}: expected a single number, got shape {array.shape}."
        )
    return float(array.reshape(()))


def stress_as_3x3(value: object, where: str) -> Float[np.ndarray, "3 3"]:
    """Converts a stress label in eV/Å³ to a 3x3 matrix.

    Args:
        value: 6 Voigt values in ASE's order (xx, yy, zz, yz, xz, xy), 9 values in
            row-major order, or a 3x3 array; in eV/Å³.
        where: Where the value was found (file, frame, key), for the error message.

    Returns:
        The stress matrix in eV/Å³, shape [3, 3].

    Raises:
        InvalidStructureError: The value has another shape or is not numeric.
    """
    stress = numeric_array(value, where).astype(np.float64)
    if stress.shape == (6,):
        return np.asarray(voigt_6_to_full_3x3_stress(stress))
    if stress.shape in ((9,), (3, 3)):
        return stress.reshape(3, 3)
    raise InvalidStructureError(
        f"{where}: stress must have 6 Voigt values (xx yy zz yz xz xy), 9 values or "
        f"shape (3, 3), got shape {stress.shape}."
    )


def check_label_magnitudes(system: ChemicalSystem, where: Mapping[str, str]) -> None:
    """Raises if a label of ``system`` is too large to be physical.

    The rule: ``|energy| / n_atoms`` above ``MAX_ABS_ENERGY_PER_ATOM`` (1e7 eV),
    a force component above ``MAX_ABS_FORCE_COMPONENT`` (1e4 eV/Å) or a stress
    component above ``MAX_ABS_STRESS_COMPONENT`` (1e4 eV/Å³) in absolute value.

    Args:
        system: The structure with its labels (absent labels are not checked).
        where: For each label name, where it was read (file, frame, key), for the
            message; ``system.source`` is used for labels not in it.

    Raises:
        InvalidStructureError: A label exceeds its limit.
    """
    checks = (
        ("|energy| / n_atoms", system.energy, system.num_atoms, "eV per atom"),
        ("the largest |force| component", system.forces, 1, "eV/Å"),
        ("the largest |stress| component", system.stress, 1, "eV/Å³"),
    )
    limits = (
        MAX_ABS_ENERGY_PER_ATOM,
        MAX_ABS_FORCE_COMPONENT,
        MAX_ABS_STRESS_COMPONENT,
    )
    for label, (what, value, divisor, unit), limit in zip(LABEL_NAMES, checks, limits):
        if value is None:
            continue
        largest = float(np.max(np.abs(value))) / divisor
        if largest > limit:
            raise InvalidStructureError(
                f"{where.get(label) or system.source}: {what} is {largest:.3g} "
                f"{unit}, beyond the limit of {limit:.0e} {unit} for a physical "
                f"{label} label (wrong units or a corrupt value?)."
            )
