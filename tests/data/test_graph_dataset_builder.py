import logging

import ase
import numpy as np
import pytest

from mlip_eqx.data import (
    ASEAtomsReader,
    DatasetInfo,
    DatasetsHaveNotBeenProcessedError,
    GraphDatasetBuilder,
    StructureTooLargeError,
    UnseenElementsError,
)
from mlip_eqx.testing.structures import random_system
from mlip_eqx.utils.config import ConfigError

E0 = {29: -3.0, 47: -2.0, 79: -5.0, 8: -7.0}


def make_atoms(rng, num_atoms, elements=(29, 47, 79)):
    """Labelled Atoms whose energy is a sum of per-element constants plus noise."""
    system = random_system(rng, num_atoms, elements=elements)
    atoms = ase.Atoms(
        numbers=system.atomic_numbers,
        positions=system.positions,
        cell=system.cell,
        pbc=True,
    )
    atoms.info["REF_energy"] = sum(E0[int(z)] for z in system.atomic_numbers)
    atoms.arrays["REF_forces"] = system.forces
    atoms.info["REF_stress"] = system.stress
    return atoms


def make_builder(train, validation=None, test=None, info=None, **config):
    reader = ASEAtomsReader(train, validation, test)
    config.setdefault("graph_cutoff_angstrom", 3.5)
    config.setdefault("batch_size", 4)
    return GraphDatasetBuilder(reader, GraphDatasetBuilder.Config(**config), info)


@pytest.fixture(scope="module")
def atoms_lists():
    rng = np.random.default_rng(0)
    train = [make_atoms(rng, int(n)) for n in rng.integers(2, 9, 30)]
    validation = [make_atoms(rng, int(n)) for n in rng.integers(2, 9, 6)]
    test = [make_atoms(rng, int(n)) for n in rng.integers(2, 9, 5)]
    return train, validation, test


def test_results_before_prepare_raise(atoms_lists):
    builder = make_builder(atoms_lists[0])
    with pytest.raises(DatasetsHaveNotBeenProcessedError, match="prepare_datasets"):
        _ = builder.dataset_info
    with pytest.raises(DatasetsHaveNotBeenProcessedError, match="prepare_datasets"):
        builder.get_splits()


def test_end_to_end_splits_info_and_batches(atoms_lists):
    train, validation, test = atoms_lists
    builder = make_builder(train, validation, test)
    builder.prepare_datasets()
    train_set, validation_set, test_set = builder.get_splits()
    assert [len(s.graphs) for s in (train_set, validation_set, test_set)] == [30, 6, 5]
    assert train_set.should_shuffle and not validation_set.should_shuffle
    info = builder.dataset_info
    assert info.cutoff_distance_angstrom == 3.5
    assert info.atomic_energies_map == pytest.approx({z: E0[z] for z in (29, 47, 79)})
    assert info.avg_num_neighbors > 0 and info.avg_r_min_angstrom > 0
    # Derived sizes: the largest structure fits; every structure appears once.
    energies = sorted(
        e
        for batch in train_set.iter_batches(0)
        for e in np.asarray(batch.energy)[np.asarray(batch.graph_mask)]
    )
    assert energies == pytest.approx(sorted(a.info["REF_energy"] for a in train))
    assert train_set.max_n_node is None and train_set.max_n_edge is None
    assert all(shape.n_graph <= 5 for shape in train_set.batch_shapes)
    assert "train atoms[" in train_set.sources[0]


def test_validation_is_held_out_from_train_when_missing(atoms_lists):
    train = atoms_lists[0]
    builder = make_builder(train, validation_fraction=0.2, split_seed=7)
    builder.prepare_datasets()
    train_set, validation_set, test_set = builder.get_splits()
    assert len(validation_set.graphs) == 6 and len(train_set.graphs) == 24
    assert len(test_set.graphs) == 0
    held_out = set(validation_set.sources)
    assert held_out.isdisjoint(train_set.sources)
    again = make_builder(train, validation_fraction=0.2, split_seed=7)
    again.prepare_datasets()
    assert set(again.get_splits()[1].sources) == held_out


def test_by_default_nothing_is_held_out_and_a_warning_says_so(atoms_lists, caplog):
    train = atoms_lists[0]
    assert GraphDatasetBuilder.Config().validation_fraction == 0.0
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        builder = make_builder(train)
        builder.prepare_datasets()
    train_set, validation_set, _ = builder.get_splits()
    assert len(train_set.graphs) == 30 and len(validation_set.graphs) == 0
    assert "There is no validation data" in caplog.text
    assert "validation_fraction > 0" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        make_builder(train, atoms_lists[1]).prepare_datasets()
    assert "There is no validation data" not in caplog.text


def test_unseen_elements_dropped_with_warning_or_error(atoms_lists, caplog):
    rng = np.random.default_rng(5)
    train = atoms_lists[0]
    validation = atoms_lists[1] + [make_atoms(rng, 4, elements=(8, 29))]
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        builder = make_builder(train, validation)
        builder.prepare_datasets()
    assert len(builder.get_splits()[1].graphs) == 6
    assert "validation: 1 of 7 structures" in caplog.text
    assert "O (Z=8) in 1 structure(s)" in caplog.text
    strict = make_builder(train, validation, strict_elements=True)
    with pytest.raises(UnseenElementsError, match=r"O \(Z=8\)"):
        strict.prepare_datasets()


def test_formation_energies_subtract_e0(atoms_lists):
    train, validation, _ = atoms_lists
    builder = make_builder(train, validation, use_formation_energies=True)
    builder.prepare_datasets()
    for graph in builder.get_splits()[0].graphs:
        assert graph.energy[0] == pytest.approx(0.0, abs=1e-8)


def test_given_dataset_info_is_used(atoms_lists):
    train, validation, _ = atoms_lists
    info = DatasetInfo(
        atomic_energies_map={29: 1.0, 47: 2.0, 79: 3.0, 8: 4.0},
        cutoff_distance_angstrom=3.5,
        avg_num_neighbors=10.0,
    )
    builder = make_builder(train, validation, info=info)
    builder.prepare_datasets()
    assert builder.dataset_info is info
    # Species follow the given element table: O is index 0, Cu index 1.
    graph = builder.get_splits()[0].graphs[0]
    z_of_species = np.array(info.allowed_atomic_numbers)[graph.species]
    assert z_of_species.tolist() == train[0].numbers.tolist()
    with pytest.raises(ValueError, match="cutoff"):
        make_builder(train, info=info, graph_cutoff_angstrom=5.0)


def test_refitted_atomic_energies_fit_the_new_data_and_keep_the_rest(
    atoms_lists, caplog
):
    train, validation, _ = atoms_lists  # energies: sums of E0 (Cu, Ag, Au)
    info = DatasetInfo(
        atomic_energies_map={29: 1.0, 47: 2.0, 79: 3.0, 8: 4.0},
        cutoff_distance_angstrom=3.5,
        avg_num_neighbors=10.0,
    )
    builder = GraphDatasetBuilder(
        ASEAtomsReader(train, validation),
        GraphDatasetBuilder.Config(graph_cutoff_angstrom=3.5, batch_size=4),
        dataset_info=info,
        refit_atomic_energies=True,
    )
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        builder.prepare_datasets()
    assert "element(s) [8], which keep their old reference energies" in caplog.text
    refitted = builder.dataset_info
    for z in (29, 47, 79):
        assert refitted.atomic_energies_map[z] == pytest.approx(E0[z], abs=1e-9)
    assert refitted.atomic_energies_map[8] == 4.0  # no O in the data: kept
    assert refitted.avg_num_neighbors == 10.0  # other statistics: kept
    with pytest.raises(ValueError, match="refit_atomic_energies needs a given"):
        GraphDatasetBuilder(ASEAtomsReader(train), refit_atomic_energies=True)


def test_too_small_max_n_node_names_the_structure(atoms_lists):
    builder = make_builder(atoms_lists[0], batch_size=1, max_n_node=3)
    with pytest.raises(StructureTooLargeError, match=r"train atoms\[\d+\]"):
        builder.prepare_datasets()


def test_default_sizes_fit_the_largest_structure_of_every_split():
    rng = np.random.default_rng(3)
    train = [make_atoms(rng, 3) for _ in range(8)]
    validation, test = [make_atoms(rng, 3), make_atoms(rng, 30)], [make_atoms(rng, 26)]
    builder = make_builder(train, validation, test)
    builder.prepare_datasets()
    for dataset, atoms_list in zip(builder.get_splits(), (train, validation, test)):
        served = sum(int(b.graph_mask.sum()) for b in dataset.iter_batches(0))
        assert served == len(atoms_list)


def test_batch_shape_settings_reach_the_datasets():
    rng = np.random.default_rng(4)
    train = [make_atoms(rng, n) for n in [2] * 20 + [12] * 20]
    builder = make_builder(train, train[:5], max_batch_shapes=1)
    builder.prepare_datasets()
    assert all(len(split.batch_shapes) == 1 for split in builder.get_splits()[:2])
    builder = make_builder(train, train[:5], target_padding_efficiency=0.95)
    builder.prepare_datasets()
    train_set = builder.get_splits()[0]
    assert len(train_set.batch_shapes) == 2
    assert train_set.target_padding_efficiency == 0.95


def test_too_small_explicit_sizes_name_the_sizes_that_fit():
    rng = np.random.default_rng(3)
    train = [make_atoms(rng, 3) for _ in range(8)]
    builder = make_builder(train, [make_atoms(rng, 30)], max_n_node=3)
    with pytest.raises(
        StructureTooLargeError,
        match=r"validation atoms\[0\]: 30 atoms .* max_n_node >= 8 and max_n_edge >= "
        r"\d+ would fit it\.$",
    ):
        builder.prepare_datasets()


def test_rms_forces_scaling(atoms_lists):
    train = atoms_lists[0]
    builder = make_builder(train, atoms_lists[1], energy_scaling="rms_forces")
    builder.prepare_datasets()
    forces = np.concatenate([a.arrays["REF_forces"] for a in train])
    info = builder.dataset_info
    assert info.scaling_stdev == pytest.approx(np.sqrt(np.mean(forces**2)))
    assert info.scaling_mean == pytest.approx(0.0, abs=1e-8)


def make_isolated_atoms(distance_angstrom=10.0):
    """Two labelled Cu atoms, not periodic, ``distance_angstrom`` apart."""
    atoms = ase.Atoms("Cu2", positions=[[0.0, 0.0, 0.0], [distance_angstrom, 0, 0]])
    atoms.info["REF_energy"] = 2 * E0[29]
    atoms.arrays["REF_forces"] = np.zeros((2, 3))
    return atoms


def test_a_structure_without_neighbours_is_a_warning_naming_it(atoms_lists, caplog):
    train, validation, _ = atoms_lists
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        builder = make_builder(train + [make_isolated_atoms()], validation)
        builder.prepare_datasets()
    assert len(builder.get_splits()[0].graphs) == 31
    assert builder.dataset_info.avg_num_neighbors > 0
    assert (
        "train: 1 of 31 structures have no neighbours within the cutoff of 3.5 Å"
        in caplog.text
    )
    assert "train atoms[30]" in caplog.text


def test_no_neighbours_in_any_training_structure_names_the_cutoff():
    train = [make_isolated_atoms(), make_isolated_atoms(8.0)]
    builder = make_builder(train, [make_isolated_atoms()])
    with pytest.raises(
        ValueError,
        match=r"The cutoff of 3\.5 Å finds no neighbours in any of the 2 training "
        r"structures \(e\.g\. train atoms\[0\]\).*larger graph_cutoff_angstrom",
    ):
        builder.prepare_datasets()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("graph_cutoff_angstrom", 0.0),
        ("batch_size", 0),
        ("max_n_node", -1),
        ("validation_fraction", 1.0),
        ("energy_scaling", "std"),
    ],
)
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"GraphDatasetBuilderConfig.{field}"):
        GraphDatasetBuilder.Config(**{field: value})


def test_too_close_atoms_name_the_structure_and_the_threshold_is_a_setting():
    rng = np.random.default_rng(1)
    train = [make_atoms(rng, 4) for _ in range(3)]
    train[2].positions[3] = train[2].positions[0] + [0.0, 0.0, 1e-5]
    builder = make_builder(train)
    with pytest.raises(
        ValueError, match=r"train atoms\[2\]: atoms 0 and 3 are 1e-05 Å apart"
    ):
        builder.prepare_datasets()
    lenient = make_builder(train, min_interatomic_distance_angstrom=0.0)
    lenient.prepare_datasets()
    assert lenient.config.min_interatomic_distance_angstrom == 0.0


def shifted_atoms(atoms_list, shift):
    """Copies with every atom's energy raised by ``shift`` (eV): another
    reference, e.g. another DFT setup."""
    shifted = []
    for atoms in atoms_list:
        copy = atoms.copy()
        copy.info["REF_energy"] = atoms.info["REF_energy"] + shift * len(atoms)
        copy.arrays["REF_forces"] = atoms.arrays["REF_forces"]
        shifted.append(copy)
    return shifted


def test_each_data_set_gets_its_own_fitted_atomic_energies(atoms_lists):
    from mlip_eqx.data import DatasetIndexReader, ReplayReader

    train, validation, _ = atoms_lists
    reader = ReplayReader(
        DatasetIndexReader(ASEAtomsReader(shifted_atoms(train[:15], 0.5)), 1),
        ASEAtomsReader(train[15:]),
        replay_fraction=1.0,
    )
    config = GraphDatasetBuilder.Config(
        graph_cutoff_angstrom=3.5, batch_size=4, validation_fraction=0.2
    )
    builder = GraphDatasetBuilder(reader, config)
    builder.prepare_datasets()
    info = builder.dataset_info
    assert info.num_datasets == 2
    for z in (29, 47, 79):
        assert info.atomic_energies_maps[0][z] == pytest.approx(E0[z], abs=1e-9)
        assert info.atomic_energies_maps[1][z] == pytest.approx(E0[z] + 0.5, abs=1e-9)
    batch = next(builder.get_splits()[0].iter_batches(0))
    assert set(np.asarray(batch.dataset_idx)[batch.graph_mask].tolist()) <= {0, 1}
    # A given info: one data set refitted, the other kept; indices checked.
    given = DatasetInfo(
        atomic_energies_map=({29: 1.0, 47: 2.0, 79: 3.0},) * 2,
        cutoff_distance_angstrom=3.5,
        dataset_name=("old", "new"),
    )
    refitted = GraphDatasetBuilder(reader, config, given, refit_atomic_energies={1})
    refitted.prepare_datasets()
    maps = refitted.dataset_info.atomic_energies_maps
    assert maps[0] == {29: 1.0, 47: 2.0, 79: 3.0}
    assert maps[1][29] == pytest.approx(E0[29] + 0.5, abs=1e-9)
    assert refitted.dataset_info.dataset_name == ("old", "new")
    too_high = GraphDatasetBuilder(
        DatasetIndexReader(ASEAtomsReader(train, validation), 2), config, given
    )
    with pytest.raises(ValueError, match=r"train: train atoms\[0\] has dataset_idx=2"):
        too_high.prepare_datasets()
    gap = GraphDatasetBuilder(DatasetIndexReader(ASEAtomsReader(train), 1), config)
    with pytest.raises(ValueError, match=r"Data sets \[0\] have no training"):
        gap.prepare_datasets()
