"""Given reference energies (E0), the least-squares fit when the data do not
determine them, and the E0 settings of a training job."""

import dataclasses
import json
import logging

import ase.io
import numpy as np
import pytest

from mlip_eqx.cli.train_flags import parse_train_settings
from mlip_eqx.data import (
    ASEAtomsReader,
    AtomicEnergiesError,
    ChemicalSystem,
    GraphDatasetBuilder,
)
from mlip_eqx.data.atomic_energies import (
    atomic_energies_by_number,
    parse_atomic_energies,
)
from mlip_eqx.data.dataset_info import fit_atomic_energies
from mlip_eqx.data.graph_creation import graph_from_chemical_system, species_table
from mlip_eqx.utils.config import ConfigError
from mlip_eqx.workflows.datasets import build_datasets, reference_energy_options
from tests.data.molecule_data import ISOLATED, build, isolated_atom, molecules

GIVEN = {1: -13.0, 6: -1020.0, 8: -2030.0}


def test_a_map_takes_symbols_atomic_numbers_or_a_file(tmp_path):
    expected = {1: -13.0, 6: -1020.0, 8: -2030.0}
    assert atomic_energies_by_number({"O": -2030, 1: -13.0, "6": -1020.0}) == expected
    assert parse_atomic_energies('{"H": -13, "C": -1020, "8": -2030}') == (
        expected,
        "given",
    )
    path = tmp_path / "e0.json"
    path.write_text(json.dumps({"H": -13.0, "C": -1020.0, "O": -2030.0}))
    assert parse_atomic_energies(str(path)) == (expected, f"given in {path}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"Hx": -13.0}', "'Hx' is not an element"),
        ('{"0": -13.0}', "0 is not an element"),
        ('{"H": "low"}', "energy of 'H' must be a number"),
        ('{"H": -13.0, "1": -13.0}', r"H \(Z=1\) is given twice"),
        ("{not json", "not valid JSON"),
        ("no_such_file.json", "neither a JSON map"),
    ],
)
def test_bad_maps_are_errors_naming_the_key(text, message):
    with pytest.raises(AtomicEnergiesError, match=message):
        parse_atomic_energies(text)


def test_given_e0s_are_used_for_the_info_and_the_shift():
    builder = build(molecules(), atomic_energies={"H": -13.0, "C": -1020, 8: -2030})
    info = builder.dataset_info
    assert info.atomic_energies_map == GIVEN
    assert info.atomic_energies_source == "given"
    e0 = np.array([GIVEN[z] for z in info.allowed_atomic_numbers])
    per_atom = [
        (float(g.energy[0]) - e0[g.species].sum()) / int(g.n_node[0])
        for g in builder.get_splits()[0].graphs
    ]
    assert info.scaling_mean == pytest.approx(np.mean(per_atom), abs=1e-9)


def test_given_e0s_win_over_isolated_atoms_and_every_element_needs_one(caplog):
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        info = build(
            [*molecules(), isolated_atom(1), isolated_atom(6)],
            atomic_energies={"H": -13.0, "O": -2030.0, "N": -1480.0},
            atomic_energies_source="given in e0.json",
        ).dataset_info
    assert info.atomic_energies_map == {1: -13.0, 6: ISOLATED[6], 8: -2030.0}
    assert info.atomic_energies_source == (
        "given in e0.json (H, O); isolated atoms in train atoms (C)"
    )
    assert "E0 of H: the given -13.000000 eV is used" in caplog.text
    with pytest.raises(
        AtomicEnergiesError, match=r"No reference energy \(E0\) for C, O, which"
    ):
        build(molecules(), atomic_energies={"H": -13.0})


def test_the_fit_of_one_composition_is_the_mean_energy_per_atom(caplog):
    graphs = [graph(energy) for energy in (-30.0, -31.0, -29.5)]
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        fitted = fit_atomic_energies(graphs, [1, 6, 8])
    mean = (-30.0 - 31.0 - 29.5) / 9
    # C is in no structure: 0, as before.
    assert fitted == pytest.approx({1: mean, 6: 0.0, 8: mean})
    assert "do not determine the reference energies (E0) of H, O" in caplog.text
    assert "--isolated-atoms" in caplog.text and "--atomic-energies" in caplog.text


def test_a_fit_that_determines_some_elements_names_only_the_others(caplog):
    # Three independent compositions determine all three E0s.
    graphs = [
        graph(-10.0, [1, 1, 8]),
        graph(-13.0, [1, 1, 8, 8]),
        graph(-20.0, [6, 8, 1, 1]),
    ]
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        fitted = fit_atomic_energies(graphs, [1, 6, 8])
    assert not caplog.text
    exact, *_ = np.linalg.lstsq(
        np.array([[2, 0, 1], [2, 0, 2], [2, 1, 1]], float), [-10.0, -13.0, -20.0]
    )
    assert list(fitted.values()) == pytest.approx(exact.tolist(), abs=1e-10)
    # H2O and H2OC2 fix C (-7.5 eV) and 2 H + O, not H and O.
    graphs = [graph(-10.0, [1, 1, 8]), graph(-25.0, [1, 1, 8, 6, 6])]
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        fitted = fit_atomic_energies(graphs, [1, 6, 8])
    assert "(E0) of H, O (too few" in caplog.text
    assert fitted[6] == pytest.approx(-7.5)
    assert 2 * fitted[1] + fitted[8] == pytest.approx(-10.0)


def test_full_rank_fits_are_the_plain_least_squares_solution(caplog):
    rng = np.random.default_rng(3)
    compositions = [rng.integers(1, 5, 3) for _ in range(8)]
    energies = rng.normal(-100, 5, 8)
    graphs = [
        graph(energy, np.repeat([1, 6, 8], counts))
        for energy, counts in zip(energies, compositions)
    ]
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        fitted = fit_atomic_energies(graphs, [1, 6, 8])
    assert not caplog.text
    expected, *_ = np.linalg.lstsq(np.array(compositions, float), energies, rcond=None)
    np.testing.assert_array_equal(list(fitted.values()), expected)


def graph(energy, numbers=(1, 1, 8)):
    system = ChemicalSystem(
        atomic_numbers=list(numbers),
        positions=np.arange(3 * len(numbers)).reshape(-1, 3) * 1.0,
        energy=energy,
    )
    return graph_from_chemical_system(system, 3.0, species_table([1, 6, 8]))


def write_data(tmp_path):
    train = tmp_path / "train.xyz"
    ase.io.write(train, molecules(), format="extxyz")
    iso = tmp_path / "iso.xyz"
    ase.io.write(iso, [isolated_atom(z) for z in ISOLATED], format="extxyz")
    return train, iso


def test_the_job_settings_reach_the_builder(tmp_path):
    train, iso = write_data(tmp_path)
    settings = parse_train_settings(
        ["--train", str(train), "--isolated-atoms", str(iso)]
    )
    *_, info = build_datasets(settings)
    assert info.atomic_energies_map == ISOLATED
    assert info.atomic_energies_source == f"isolated atoms in {iso}"
    e0_file = tmp_path / "e0.json"
    e0_file.write_text('{"1": -13.0, "C": -1020.0, "O": -2030.0}')
    settings = parse_train_settings(
        ["--train", str(train), "--atomic-energies", str(e0_file)]
    )
    *_, info = build_datasets(settings)
    assert info.atomic_energies_map == GIVEN
    assert info.atomic_energies_source == f"given in {e0_file}"


def test_the_network_config_map_is_the_given_e0s(tmp_path):
    train, _ = write_data(tmp_path)
    settings = parse_train_settings(["--train", str(train)])
    settings = dataclasses.replace(
        settings, model=dataclasses.replace(settings.model, atomic_energies=GIVEN)
    )
    options = reference_energy_options(settings)
    assert options["atomic_energies"] == GIVEN
    *_, info = build_datasets(settings)
    assert info.atomic_energies_map == GIVEN
    assert info.atomic_energies_source == "given (model.atomic_energies)"
    differing = dataclasses.replace(
        settings,
        data=dataclasses.replace(settings.data, atomic_energies='{"H": -1.0}'),
    )
    with pytest.raises(ConfigError, match="differ: give the reference energies once"):
        reference_energy_options(differing)


def test_bad_e0_settings_are_config_errors():
    with pytest.raises(ConfigError, match="'Qq' is not an element"):
        parse_train_settings(["--atomic-energies", '{"Qq": 1.0}'])
    with pytest.raises(ConfigError, match="weight of 'MD' must be a number >= 0"):
        parse_train_settings(["--config-type-weights", '{"MD": -1}'])
    with pytest.raises(ConfigError, match="isolated_atoms concern reading files"):
        parse_train_settings(["--preprocessed", "dir", "--isolated-atoms", "f.xyz"])


def test_given_e0s_exclude_a_given_dataset_info():
    info = build(molecules()).dataset_info
    config = GraphDatasetBuilder.Config(graph_cutoff_angstrom=3.0)
    with pytest.raises(ValueError, match="atomic_energies and dataset_info exclude"):
        GraphDatasetBuilder(
            ASEAtomsReader(molecules()), config, info, atomic_energies=GIVEN
        )


def test_a_pretrained_model_brings_its_own_e0s(tmp_path):
    train, iso = write_data(tmp_path)
    settings = parse_train_settings(
        ["--train", str(train), "--isolated-atoms", str(iso)]
    )
    *_, info = build_datasets(settings)
    with pytest.raises(ConfigError, match="a pretrained model brings its reference"):
        build_datasets(settings, info)
