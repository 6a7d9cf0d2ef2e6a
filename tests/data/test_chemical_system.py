import dataclasses

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


def test_atomic_species_of_the_original_library_is_accepted_and_ignored():
    system = make(atomic_species=np.array([0, 0]))
    assert system == make()
    assert "atomic_species" not in {field.name for field in dataclasses.fields(system)}
