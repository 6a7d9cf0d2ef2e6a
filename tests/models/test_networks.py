"""The test suite of every network: physics, padding, batching, gradients, archive.

A network opts in by adding a configuration to ``NETWORK_CONFIGS`` in
``tests/helpers/models.py``; every test here then runs on it.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.graph import batch_graphs
from mlip_eqx.models.model_io import load_model_from_zip, save_model_to_zip
from tests.helpers import physics
from tests.helpers.models import ELEMENTS, NETWORK_CONFIGS, force_field
from tests.helpers.structures import random_system, some_systems

NAMES = sorted(NETWORK_CONFIGS)


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def molecule(rng: np.random.Generator, num_atoms: int) -> ChemicalSystem:
    return random_system(rng, num_atoms, periodic=False)


def triclinic_crystal(rng: np.random.Generator, num_atoms: int) -> ChemicalSystem:
    """A periodic structure whose cell is far from orthogonal."""
    system = random_system(rng, num_atoms)
    shear = np.array([[1.0, 0.0, 0.0], [0.35, 1.0, 0.0], [-0.2, 0.25, 1.0]])
    return ChemicalSystem(
        atomic_numbers=system.atomic_numbers,
        positions=system.positions @ shear,
        cell=system.cell @ shear,
        pbc=system.pbc,
    )


@pytest.mark.parametrize("name", NAMES)
def test_invariance_under_rotation_reflection_translation_permutation(name, x64):
    rng = np.random.default_rng(0)
    ff = force_field(name)
    for system in (molecule(rng, 6), triclinic_crystal(rng, 5)):
        for reflect in (False, True):
            physics.check_invariance(ff, system, rng, reflect, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_forces_are_minus_energy_gradient(name, x64):
    rng = np.random.default_rng(1)
    physics.check_forces_are_energy_gradient(
        force_field(name), triclinic_crystal(rng, 4), step=1e-5, rtol=1e-6, atol=1e-8
    )


@pytest.mark.parametrize("name", NAMES)
def test_stress_is_strain_derivative_of_energy(name, x64):
    rng = np.random.default_rng(2)
    physics.check_stress_is_strain_derivative(
        force_field(name), triclinic_crystal(rng, 5), step=1e-6, rtol=1e-6, atol=1e-9
    )


@pytest.mark.parametrize("name", NAMES)
def test_energy_and_forces_continuous_at_cutoff(name, x64):
    physics.check_continuity_at_cutoff(
        force_field(name),
        ELEMENTS,
        step=1e-4,
        energy_tolerance=1e-9,
        force_tolerance=1e-6,
    )


@pytest.mark.parametrize("name", NAMES)
def test_prediction_is_float64_under_x64(name, x64):
    ff = force_field(name)
    assert ff.dtype == jnp.float64
    batch = physics.make_batch(ff, some_systems(1))
    prediction = physics.predict_graph(ff, batch)
    for leaf in jax.tree.leaves(prediction):
        assert leaf.dtype == jnp.float64


@pytest.mark.parametrize("name", NAMES)
def test_batch_gives_the_same_results_as_each_structure_alone(name, x64):
    ff = force_field(name)
    systems = some_systems(2)
    together = physics.predict_each(ff, systems)
    assert len(physics.groups_that_fit(ff, systems, physics.BATCH_SIZES)) == 1
    alone = [physics.predict_each(ff, [system])[0] for system in systems]
    physics.assert_trees_close(together, alone, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_extra_padding_changes_nothing(name, x64):
    ff = force_field(name)
    systems = some_systems(3)
    graphs = [physics.make_graph(ff, system) for system in systems]
    tight = physics.predict_each(
        ff,
        systems,
        n_node=sum(g.num_nodes for g in graphs) + 1,
        n_edge=sum(g.num_edges for g in graphs),
        n_graph=len(graphs) + 1,
    )
    padded = physics.predict_each(ff, systems)  # BATCH_SIZES: much more padding
    physics.assert_trees_close(tight, padded, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_molecule_has_zero_stress_and_padding_graphs_are_zero(name, x64):
    ff = force_field(name)
    rng = np.random.default_rng(4)
    batch = physics.make_batch(ff, [random_system(rng, 4, periodic=False)])
    prediction = physics.predict_graph(ff, batch)
    np.testing.assert_array_equal(prediction.stress, 0.0)
    np.testing.assert_array_equal(prediction.pressure, 0.0)
    assert np.all(np.asarray(prediction.energy[1:]) == 0.0)
    assert prediction.energy[0] != 0.0


@pytest.mark.parametrize("name", NAMES)
def test_energies_are_those_of_the_prediction(name, x64):
    ff = force_field(name)
    batch = physics.make_batch(ff, some_systems(5))
    energies = physics.predict_energies(ff, batch)
    physics.assert_trees_close(
        energies, physics.predict_graph(ff, batch).energy, rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("name", NAMES)
def test_parameter_gradients_are_finite_with_padding(name, x64):
    """Training differentiates energy, forces and stress with respect to the params;
    zero-length padding edges and zero padding cells must not produce NaN."""
    ff = force_field(name)
    batch = jax.tree.map(jnp.asarray, physics.make_batch(ff, some_systems(7)))
    assert not bool(batch.edge_mask.all()) and not bool(batch.graph_mask.all())
    gradients = jax.tree.leaves(physics.loss_gradient(ff.params, ff, batch))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in gradients)
    assert any(bool(jnp.any(g != 0.0)) for g in gradients)


@pytest.mark.parametrize("name", NAMES)
def test_paired_edges_give_the_same_prediction_as_the_generic_path(name, x64):
    """Networks that use the paired layout (e.g. radial functions evaluated once
    per pair) predict the same as without it, stress included."""
    ff = force_field(name)
    graphs = [physics.make_graph(ff, system) for system in some_systems(7)]
    unpaired = [dataclasses.replace(graph, paired_edges=False) for graph in graphs]
    paired_batch, generic_batch = (
        batch_graphs(group, **physics.BATCH_SIZES) for group in (graphs, unpaired)
    )
    assert paired_batch.paired_edges and not generic_batch.paired_edges
    physics.assert_trees_close(
        physics.predict_graph(ff, paired_batch),
        physics.predict_graph(ff, generic_batch),
        rtol=1e-10,
        atol=1e-12,
    )


@pytest.mark.parametrize("name", NAMES)
def test_zip_round_trip_gives_identical_predictions(name, x64, tmp_path):
    """Found by class and through the network registry."""
    ff = force_field(name)
    path = tmp_path / "model.zip"
    save_model_to_zip(path, ff)
    batch = physics.make_batch(ff, some_systems(8))
    expected = physics.predict_graph(ff, batch)
    assert np.any(np.asarray(expected.forces) != 0)
    for model_type in (type(ff.network), None):
        loaded = load_model_from_zip(model_type, path)
        assert type(loaded.network) is type(ff.network)
        assert loaded.config == ff.config
        assert loaded.dataset_info == ff.dataset_info
        assert loaded.predict_stress == ff.predict_stress
        assert loaded.dtype == ff.dtype
        physics.assert_trees_close(loaded.params, ff.params, rtol=0, atol=0)
        physics.assert_trees_close(
            physics.predict_graph(loaded, batch), expected, rtol=0, atol=0
        )
