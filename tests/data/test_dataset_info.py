import dataclasses
import json

import numpy as np
import pytest

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.data.dataset_info import (
    DatasetInfo,
    average_min_edge_length,
    average_num_neighbours,
    fit_atomic_energies,
)
from mlip_eqx.data.graph_creation import graph_from_chemical_system, species_table
from mlip_eqx.testing.structures import random_system

ELEMENTS = [1, 6, 8, 29]
TABLE = species_table(ELEMENTS)


def test_e0_fit_is_exact_for_sums_of_per_element_constants():
    rng = np.random.default_rng(0)
    true_e0 = {1: -13.6, 6: -1030.5, 8: -2040.1, 29: -4.2}
    graphs = []
    for _ in range(12):
        system = random_system(rng, int(rng.integers(2, 9)), elements=ELEMENTS)
        energy = sum(true_e0[int(z)] for z in system.atomic_numbers)
        graphs.append(
            graph_from_chemical_system(
                dataclasses.replace(system, energy=energy), 3.0, TABLE
            )
        )
    fitted = fit_atomic_energies(graphs, ELEMENTS)
    assert fitted.keys() == true_e0.keys()
    for z, e0 in true_e0.items():
        assert fitted[z] == pytest.approx(e0, abs=1e-8)


def test_e0_fit_ignores_structures_without_energy():
    compositions = [[1, 1, 8], [1, 8, 8], [1, 1, 1], [8], [8, 8, 1]]
    graphs = []
    for index, numbers in enumerate(compositions):
        numbers = np.array(numbers)
        energy = -1.0 * np.sum(numbers == 1) - 5.0 * np.sum(numbers == 8)
        system = ChemicalSystem(
            atomic_numbers=numbers,
            positions=np.arange(3 * len(numbers)).reshape(-1, 3) * 3.0,
            # Structure 3 has no energy label: it must not enter the fit.
            energy=energy if index != 3 else None,
        )
        graphs.append(graph_from_chemical_system(system, 3.0, species_table([1, 8])))
    assert not graphs[3].has_energy[0]
    assert fit_atomic_energies(graphs, [1, 8]) == pytest.approx({1: -1.0, 8: -5.0})


def test_neighbour_statistics():
    # Two atoms 1.5 Å apart and one isolated atom: 2 edges over 3 atoms.
    system = ChemicalSystem(
        atomic_numbers=[1, 1, 8],
        positions=[[0, 0, 0], [1.5, 0, 0], [10, 0, 0]],
        energy=0.0,
    )
    graph = graph_from_chemical_system(system, 2.0, TABLE)
    assert average_num_neighbours([graph]) == pytest.approx(2 / 3)
    assert average_min_edge_length([graph]) == pytest.approx(1.5)


def test_json_round_trip_and_str(tmp_path):
    info = DatasetInfo(
        atomic_energies_map={8: -2040.1, 1: -13.6},
        cutoff_distance_angstrom=5.0,
        avg_num_neighbors=12.5,
        avg_r_min_angstrom=0.95,
        scaling_mean=0.1,
        scaling_stdev=0.5,
    )
    path = tmp_path / "dataset_info.json"
    info.save_json(path)
    restored = DatasetInfo.load_json(path)
    assert restored == info and hash(restored) == hash(info)
    assert restored.allowed_atomic_numbers == [1, 8]
    text = str(info)
    assert "H: -13.6000 eV" in text and "O: -2040.1000 eV" in text
    assert "5.000 Å" in text


def test_bad_values_and_files(tmp_path):
    with pytest.raises(ValueError, match="not an atomic number"):
        DatasetInfo(atomic_energies_map={0: 1.0}, cutoff_distance_angstrom=5.0)
    with pytest.raises(ValueError, match="cutoff_distance_angstrom"):
        DatasetInfo(atomic_energies_map={1: 1.0}, cutoff_distance_angstrom=-1.0)
    with pytest.raises(ValueError, match="unknown keys"):
        DatasetInfo.from_dict(
            {"atomic_energies_map": {}, "cutoff_distance_angstrom": 5, "typo": 1}
        )
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        DatasetInfo.load_json(broken)


def test_the_e0_source_is_saved_shown_and_optional(tmp_path):
    info = DatasetInfo(
        atomic_energies_map={1: -13.6},
        cutoff_distance_angstrom=5.0,
        atomic_energies_source="isolated atoms in iso.xyz",
    )
    path = tmp_path / "dataset_info.json"
    info.save_json(path)
    assert json.loads(path.read_text())["atomic_energies_source"] == (
        "isolated atoms in iso.xyz"
    )
    restored = DatasetInfo.load_json(path)
    assert restored == info and hash(restored) == hash(info)
    assert "atomic energies (from isolated atoms in iso.xyz): {H: -13.6000 eV}" in (
        str(restored)
    )
    # Files of earlier versions have no such key: the source is unknown.
    older = DatasetInfo.to_dict(dataclasses.replace(info, atomic_energies_source=None))
    assert "atomic_energies_source" not in older
    path.write_text(json.dumps(older))
    assert DatasetInfo.load_json(path).atomic_energies_source is None
    assert "atomic energies: {H" in str(DatasetInfo.load_json(path))
    with pytest.raises(ValueError, match="atomic_energies_source must be"):
        DatasetInfo({1: -13.6}, 5.0, atomic_energies_source="")
