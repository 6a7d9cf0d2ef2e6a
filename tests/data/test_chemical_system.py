import numpy as np
import pytest

from mlip_eqx.data.chemical_system import ChemicalSystem, InvalidStructureError

SOURCE = "data.xyz, frame 4"


def make(**overrides):
    fields = dict(
        atomic_numbers=[29, 29],
        positions=[[0.0, 0.0, 0.0], [1.8, 0.0, 0.0]],
        energy=-1.0,
        forces=np.zeros((2, 3)),
        stress=np.zeros((3, 3)),
        cell=np.eye(3) * 3.6,
        pbc=[True, True, True],
        source=SOURCE,
    )
    fields.update(overrides)
    return ChemicalSystem(**fields)


def test_valid_structure_converts_types_and_keeps_missing_labels_none():
    system = make(energy=None, forces=None, stress=None)
    assert system.atomic_numbers.dtype == np.int64
    assert system.positions.dtype == np.float64
    assert system.energy is None and system.forces is None and system.stress is None
    assert system.num_atoms == 2 and system.weight == 1.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"positions": [[0, 0, 0], [np.nan, 0, 0]]},
            r"positions contains NaN or inf values \(atoms 1\)",
        ),
        ({"positions": [[np.inf, 0, 0], [1, 0, 0]]}, "positions contains NaN"),
        ({"energy": np.nan}, "energy contains NaN"),
        ({"forces": np.full((2, 3), np.inf)}, "forces contains NaN"),
        ({"stress": np.full((3, 3), np.nan)}, "stress contains NaN"),
        ({"forces": np.zeros((3, 3))}, r"forces must have shape \(2, 3\)"),
        ({"stress": np.zeros(6)}, r"stress must have shape \(3, 3\)"),
        ({"positions": np.zeros((2, 2))}, r"positions must have shape \(2, 3\)"),
        ({"atomic_numbers": [0, 29]}, r"invalid atomic numbers \[0\]"),
        ({"atomic_numbers": [], "positions": np.zeros((0, 3))}, "no atoms"),
        ({"cell": np.zeros((3, 3))}, "pbc=.*linearly independent"),
        ({"cell": [[1, 0, 0], [2, 0, 0], [0, 0, 1]]}, "linearly independent"),
        ({"pbc": [False] * 3, "cell": np.zeros((3, 3))}, "stress label needs a cell"),
        ({"weight": -1.0}, "weight must be >= 0"),
    ],
)
def test_bad_structures_raise_naming_the_source(overrides, message):
    with pytest.raises(InvalidStructureError, match=f"{SOURCE}: .*{message}"):
        make(**overrides)


def test_partially_periodic_structure_needs_only_its_periodic_vectors():
    system = make(
        stress=None, cell=[[3.6, 0, 0], [0, 3.6, 0], [0, 0, 0]], pbc=[True, True, False]
    )
    assert system.pbc == (True, True, False)


def test_pbc_is_a_tuple_of_bools_that_compares_with_tuples():
    molecule = make(stress=None, cell=None, pbc=None)
    assert molecule.pbc == (False, False, False)
    np.testing.assert_array_equal(molecule.cell, np.zeros((3, 3)))
    assert make(pbc=np.array([1, 1, 1])).pbc == (True, True, True)
    assert make(pbc=True).pbc == (True, True, True)
    with pytest.raises(InvalidStructureError, match="pbc must have 3 entries, got 2"):
        make(pbc=[True, True])


def test_optional_fields_of_the_original_library_are_kept_and_converted():
    system = make(
        atomic_species=[[1.0, 0.0], [1.0, 0.0]],
        partial_charges=[0.5, -0.5],
        charge=np.int64(-1),
        spin_multiplicity=2.0,
        dipole_moment=(0.1, 0.0, 0.0),
    )
    assert system.atomic_species.shape == (2, 2)
    assert system.partial_charges.dtype == np.float64
    assert system.charge == -1 and type(system.charge) is int
    assert system.spin_multiplicity == 2 and type(system.spin_multiplicity) is int
    np.testing.assert_array_equal(system.dipole_moment, [0.1, 0.0, 0.0])
    missing = make()
    assert missing.atomic_species is None and missing.partial_charges is None
    assert missing.charge is None and missing.spin_multiplicity is None
    assert missing.dipole_moment is None


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"atomic_species": [0, 0, 0]}, r"atomic_species must have shape \[2\]"),
        ({"partial_charges": [0.1]}, r"partial_charges must have shape \(2,\)"),
        ({"partial_charges": [0.1, np.nan]}, r"partial_charges contains NaN .*atoms 1"),
        ({"dipole_moment": [0.0, 1.0]}, r"dipole_moment must have shape \(3,\)"),
        ({"dipole_moment": [0.0, np.inf, 0.0]}, "dipole_moment contains NaN"),
        ({"charge": 0.5}, "charge must be an integer, got 0.5"),
        ({"spin_multiplicity": "two"}, "spin_multiplicity must be an integer"),
        ({"spin_multiplicity": 0}, r"spin_multiplicity \(2S \+ 1\) must be >= 1"),
    ],
)
def test_bad_optional_fields_name_the_field_and_structure(overrides, match):
    with pytest.raises(InvalidStructureError, match=match) as error:
        make(**overrides)
    assert SOURCE in str(error.value)
