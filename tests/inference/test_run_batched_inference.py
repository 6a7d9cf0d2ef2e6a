"""run_batched_inference: one prediction per structure, in input order, equal to
the force field on each structure alone; unknown elements are named up front."""

import equinox as eqx
import jax
import numpy as np
import pytest

from mlip_eqx.data import GraphDataset, UnseenElementsError
from mlip_eqx.inference import batched_inference, predict_dataset, run_batched_inference
from mlip_eqx.models import Prediction
from mlip_eqx.testing import physics
from mlip_eqx.testing.structures import random_system
from tests.helpers.atoms import as_atoms
from tests.helpers.models import force_field

# Molecules and cells of very different sizes, not in order of size.
SIZES = [(30, True), (2, False), (5, True), (40, True), (3, False), (12, True)]
SIZES += [(6, False), (4, True), (20, True), (2, False), (8, True), (4, False)]
SIZES += [(16, True), (3, True), (5, False), (10, True), (7, False), (24, True)]
TOLERANCE = {"rtol": 1e-6, "atol": 1e-10}  # float64


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def mixed_systems(seed: int):
    rng = np.random.default_rng(seed)
    return [random_system(rng, n, periodic=periodic) for n, periodic in SIZES]


def assert_equal_to_each_structure_alone(predictions, systems, ff) -> None:
    assert len(predictions) == len(systems)
    for prediction, system in zip(predictions, systems):
        (expected,) = physics.predict_each(ff, [system])
        assert isinstance(prediction, Prediction)
        assert isinstance(prediction.energy, float)
        assert prediction.forces.shape == (system.num_atoms, 3)
        np.testing.assert_allclose(prediction.energy, expected.energy, **TOLERANCE)
        np.testing.assert_allclose(prediction.forces, expected.forces, **TOLERANCE)
        np.testing.assert_allclose(prediction.stress, expected.stress, **TOLERANCE)
        np.testing.assert_allclose(prediction.pressure, expected.pressure, **TOLERANCE)


def test_atoms_predictions_equal_each_structure_alone_in_input_order(x64):
    ff = force_field("mace-tiny", predict_stress=True)
    systems = mixed_systems(seed=0)
    predictions = run_batched_inference(
        [as_atoms(system) for system in systems], ff, batch_size=2
    )
    assert_equal_to_each_structure_alone(predictions, systems, ff)
    assert len({p.energy for p in predictions}) == len(systems)


def test_dataset_predictions_follow_the_dataset_order_and_keep_labels(x64):
    ff = force_field("mace-tiny", predict_stress=True)
    systems = mixed_systems(seed=0)  # the shapes of the test above
    graphs = [physics.make_graph(ff, system) for system in systems]
    dataset = GraphDataset(graphs, batch_size=2, should_shuffle=True, seed=4)
    assert len(dataset.batch_shapes) > 1
    predictions = run_batched_inference(dataset, ff, batch_size=1)
    assert_equal_to_each_structure_alone(predictions, systems, ff)
    with_labels = predict_dataset(ff, dataset)
    for labelled, prediction, system in zip(with_labels, predictions, systems):
        assert labelled.energy == prediction.energy
        assert labelled.reference_energy == system.energy
        np.testing.assert_array_equal(labelled.reference_forces, system.forces)


def test_stress_is_none_unless_the_force_field_predicts_it():
    ff = force_field("mace-tiny", predict_stress=False)
    systems = mixed_systems(seed=2)[:3]
    predictions = run_batched_inference([as_atoms(s) for s in systems], ff)
    assert [p.forces.shape[0] for p in predictions] == [s.num_atoms for s in systems]
    assert all(p.stress is None and p.pressure is None for p in predictions)
    assert run_batched_inference([], ff) == []


def test_unknown_element_names_structure_and_element_before_any_graph(monkeypatch):
    structures = [as_atoms(system) for system in mixed_systems(seed=3)]
    structures[5].numbers[1] = 26

    def no_graphs(*args):
        pytest.fail("a graph was built before the elements were checked")

    monkeypatch.setattr(batched_inference, "graph_from_atoms", no_graphs)
    with pytest.raises(
        UnseenElementsError, match=r"^structure 5 .*: Fe \(Z=26\); it knows Cu, Ag"
    ):
        run_batched_inference(structures, force_field("mace-tiny"))


def test_graph_dataset_of_another_element_table_is_an_error():
    ff = force_field("mace-tiny")
    graph = physics.make_graph(ff, mixed_systems(seed=4)[2])
    graph = eqx.tree_at(lambda g: g.species, graph, np.full_like(graph.species, 3))
    dataset = GraphDataset([graph], batch_size=1, sources=["data.xyz, frame 0"])
    with pytest.raises(ValueError, match=r"data.xyz, frame 0: species index 3"):
        run_batched_inference(dataset, ff)
