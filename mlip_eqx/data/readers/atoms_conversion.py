"""Conversion of one ``ase.Atoms`` (with its labels) to a ChemicalSystem."""

from collections.abc import Sequence

import ase
import numpy as np

from mlip_eqx.data.chemical_system import (
    ChemicalSystem,
    InvalidStructureError,
    check_finite,
)
from mlip_eqx.data.readers.labels import (
    MissingLabelError,
    check_label_magnitudes,
    numeric_array,
    scalar,
    stress_as_3x3,
)

# Keys tried, in order, when no key is given; then the value an ASE calculator holds.
DEFAULT_LABEL_KEYS = {
    "energy": ("REF_energy", "energy"),
    "forces": ("REF_forces", "forces"),
    "stress": ("REF_stress", "stress"),
}
DEFAULT_WEIGHT_KEYS = ("config_weight", "weight")
# The original library's (0.2) optional labels, under its default keys: in
# ``atoms.arrays`` (per-atom columns) or ``atoms.info``.
OPTIONAL_LABEL_KEYS = (
    "partial_charges",
    "charge",
    "spin_multiplicity",
    "dipole_moment",
)
CONFIG_TYPE_KEY = "config_type"


def atoms_to_chemical_system(
    atoms: ase.Atoms,
    source: str,
    *,
    required_labels: Sequence[str] = ("energy", "forces"),
    energy_key: str | None = None,
    forces_key: str | None = None,
    stress_key: str | None = None,
    weight_key: str | None = None,
) -> ChemicalSystem:
    """Builds a ChemicalSystem from an ``ase.Atoms`` and the labels it carries.

    A label is looked up under its key: in ``atoms.info`` for energy (eV) and
    stress (eV/Å³), in ``atoms.arrays`` for forces (eV/Å), then among the results of
    ``atoms.calc`` under the same name (``ase.io`` moves keys named exactly
    "energy", "forces" and "stress" into a SinglePointCalculator). With no key
    given, the keys tried are "REF_<label>", then "<label>", then the calculator's
    "<label>". Stress may be 6 Voigt values (xx yy zz yz xz xy), 9 values or 3x3.
    The weight is ``atoms.info[weight_key]``; with no key, "config_weight", then
    "weight", else 1.0. The optional labels ``partial_charges`` (e),
    ``charge`` (e), ``spin_multiplicity`` and ``dipole_moment`` (e·Å) are taken
    from ``atoms.arrays`` or ``atoms.info`` under those names, as the original
    library does. The info key "config_type" (a string), if present, becomes
    the structure's ``config_type``. A one-atom structure needs no forces even
    if they are required (they are zero by translation invariance; isolated-atom
    frames usually have none).

    Args:
        atoms: The structure; positions in Å, cell and pbc are taken from it.
        source: Where the structure comes from (e.g. "data.xyz, frame 3"), used in
            error messages.
        required_labels: Labels that must be present ("energy", "forces", "stress").
        energy_key: Key of the energy in eV, or None for the default lookup.
        forces_key: Key of the forces in eV/Å, or None for the default lookup.
        stress_key: Key of the stress in eV/Å³, or None for the default lookup.
        weight_key: Info key of the structure's weight, or None for the default
            lookup. An explicit key must be present.

    Returns:
        The structure; labels that are not found are None.

    Raises:
        MissingLabelError: A required label (or an explicit weight key) is
            missing; the message lists the keys the structure has.
        InvalidStructureError: A value is malformed (NaN, wrong shape, ...), or a
            label is beyond the limits of :func:`check_label_magnitudes`.
    """
    # Checked first: NaN positions also hide the calculator's labels (ASE compares
    # the atoms with the calculator's copy, and NaN != NaN).
    check_finite("positions", atoms.positions, source)
    check_finite("cell", atoms.cell.array, source)
    if len(atoms) == 1:
        required_labels = [label for label in required_labels if label != "forces"]
    energy, energy_where = _find_label(
        atoms, "energy", energy_key, source, required_labels
    )
    forces, forces_where = _find_label(
        atoms, "forces", forces_key, source, required_labels
    )
    stress, stress_where = _find_label(
        atoms, "stress", stress_key, source, required_labels
    )
    system = ChemicalSystem(
        atomic_numbers=atoms.numbers,
        positions=atoms.positions,
        energy=None if energy is None else scalar(energy, energy_where),
        forces=None if forces is None else numeric_array(forces, forces_where),
        stress=None if stress is None else stress_as_3x3(stress, stress_where),
        cell=atoms.cell.array,
        pbc=atoms.pbc,
        weight=_find_weight(atoms, weight_key, source),
        source=source,
        config_type=_config_type(atoms, source),
        **_optional_labels(atoms, source),
    )
    check_label_magnitudes(
        system, {"energy": energy_where, "forces": forces_where, "stress": stress_where}
    )
    return system


def _find_label(
    atoms: ase.Atoms,
    label: str,
    key: str | None,
    source: str,
    required_labels: Sequence[str],
) -> tuple[object, str]:
    """Returns the raw value of ``label`` (or None) and where it was found."""
    store_name = "arrays" if label == "forces" else "info"
    store = atoms.arrays if label == "forces" else atoms.info
    keys = DEFAULT_LABEL_KEYS[label] if key is None else (key,)
    for name in keys:
        if name in store:
            return store[name], f"{source}, {store_name} key '{name}'"
    calculator_name = label if key is None else key
    value = _calculator_result(atoms, calculator_name)
    if value is not None:
        return value, f"{source}, calculator result '{calculator_name}'"
    if label in required_labels:
        tried = ", ".join(repr(name) for name in keys)
        raise MissingLabelError(
            f"{source}: required label '{label}' is missing (looked for {store_name} "
            f"key(s) {tried} and a calculator result '{calculator_name}'). "
            f"{available_keys(atoms)}"
        )
    return None, ""


def available_keys(atoms: ase.Atoms) -> str:
    """The keys ``atoms`` holds (info, arrays, calculator results), in words."""
    results = getattr(atoms.calc, "results", None) or {}
    listed = (
        ("info keys", sorted(atoms.info)),
        ("arrays keys", sorted(atoms.arrays)),
        ("calculator results", sorted(results)),
    )
    return (
        "The structure has "
        + "; ".join(
            f"{what} {', '.join(map(repr, keys)) if keys else 'none'}"
            for what, keys in listed
        )
        + "."
    )


def _config_type(atoms: ase.Atoms, source: str) -> str | None:
    """The info key ``config_type`` as a string (an integer is written out, as
    ``ase.io`` reads ``config_type=300`` as one), or None if absent."""
    value = atoms.info.get(CONFIG_TYPE_KEY)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return str(value)
    raise InvalidStructureError(
        f"{source}, info key '{CONFIG_TYPE_KEY}': expected a string, got {value!r}."
    )


def _calculator_result(atoms: ase.Atoms, name: str) -> object:
    """The calculator's stored result ``name`` for exactly these atoms, or None."""
    calculator = atoms.calc
    results = getattr(calculator, "results", None)
    if not results or name not in results:
        return None
    if calculator.check_state(atoms):
        return None
    return results[name]


def _optional_labels(atoms: ase.Atoms, source: str) -> dict[str, object]:
    """The optional labels of ``OPTIONAL_LABEL_KEYS`` that ``atoms`` carries."""
    found = {}
    for name in OPTIONAL_LABEL_KEYS:
        for store_name, store in (("arrays", atoms.arrays), ("info", atoms.info)):
            if name in store:
                where = f"{source}, {store_name} key '{name}'"
                found[name] = numeric_array(store[name], where)
                break
    return found


def _find_weight(atoms: ase.Atoms, weight_key: str | None, source: str) -> float:
    if weight_key is not None:
        if weight_key not in atoms.info:
            raise MissingLabelError(
                f"{source}: weight key '{weight_key}' is missing from the info."
            )
        return scalar(atoms.info[weight_key], f"{source}, info key '{weight_key}'")
    for name in DEFAULT_WEIGHT_KEYS:
        if name in atoms.info:
            return scalar(atoms.info[name], f"{source}, info key '{name}'")
    return 1.0
