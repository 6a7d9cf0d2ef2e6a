"""The test suite that every network opts into: physics, padding, batching,
gradients, dtype and the model archive.

A network (ours or a user's) gets these tests by subclassing
:class:`NetworkTests` in a pytest module and giving the fixture
``make_force_field``: a function that builds the :class:`ForceField` to test
(with ``predict_stress=True``) in the current dtype::

    from mlip_eqx.testing import NetworkTests

    class TestMyNetwork(NetworkTests):
        @pytest.fixture
        def make_force_field(self):
            return lambda: ForceField.from_mlip_network(
                MyNetwork(MyNetwork.Config(), dataset_info), predict_stress=True
            )

The tests run in float64 (they call ``make_force_field()`` under
``jax.enable_x64(True)``); the test structures hold the elements of the force
field's DatasetInfo (at least one is needed), and the network must be registered
(:func:`mlip_eqx.models.registry.register_network`) for the archive test. Needs
pytest (the ``test`` extra).
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.graph import batch_graphs
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.model_io import load_model_from_zip, save_model_to_zip
from mlip_eqx.testing import physics
from mlip_eqx.testing.structures import random_system

ForceFieldFactory = Callable[[], ForceField]


def sample_structures(force_field: ForceField, seed: int) -> list[ChemicalSystem]:
    """Two periodic structures (5 and 7 atoms) and a molecule (3 atoms) of the
    force field's elements."""
    rng = np.random.default_rng(seed)
    elements = force_field.allowed_atomic_numbers
    return [
        random_system(rng, 5, elements),
        random_system(rng, 3, elements, periodic=False),
        random_system(rng, 7, elements),
    ]


def triclinic_crystal(
    rng: np.random.Generator, num_atoms: int, elements: Sequence[int]
) -> ChemicalSystem:
    """A periodic structure whose cell is far from orthogonal."""
    system = random_system(rng, num_atoms, elements)
    shear = np.array([[1.0, 0.0, 0.0], [0.35, 1.0, 0.0], [-0.2, 0.25, 1.0]])
    return ChemicalSystem(
        atomic_numbers=system.atomic_numbers,
        positions=system.positions @ shear,
        cell=system.cell @ shear,
        pbc=system.pbc,
    )


class NetworkTests:
    """Mixin of the shared network tests (see the module docstring).

    Attributes:
        cutoff_force_tolerance: Largest force change (eV/Å) when an atom moves
            from 1e-4 Å inside the cutoff to 1e-4 Å outside. An envelope whose
            first p derivatives vanish at the cutoff changes the forces by
            O(1e-4^p); ours (polynomial, p >= 2) stay below 1e-6, a network
            whose envelope is only C1 needs about 1e-4.
    """

    cutoff_force_tolerance: ClassVar[float] = 1e-6

    @pytest.fixture
    def force_field(
        self, make_force_field: ForceFieldFactory, request: pytest.FixtureRequest
    ) -> ForceField:
        """The force field in float64, with x64 on until the test ends."""
        x64 = jax.enable_x64(True)
        x64.__enter__()
        request.addfinalizer(lambda: x64.__exit__(None, None, None))
        return make_force_field()

    def test_invariance_under_rotation_reflection_translation_permutation(
        self, force_field
    ):
        rng = np.random.default_rng(0)
        elements = force_field.allowed_atomic_numbers
        molecule = random_system(rng, 6, elements, periodic=False)
        for system in (molecule, triclinic_crystal(rng, 5, elements)):
            for reflect in (False, True):
                physics.check_invariance(
                    force_field, system, rng, reflect, rtol=1e-9, atol=1e-10
                )

    def test_forces_are_minus_energy_gradient(self, force_field):
        rng = np.random.default_rng(1)
        system = triclinic_crystal(rng, 4, force_field.allowed_atomic_numbers)
        physics.check_forces_are_energy_gradient(
            force_field, system, step=1e-5, rtol=1e-6, atol=1e-8
        )

    def test_stress_is_strain_derivative_of_energy(self, force_field):
        rng = np.random.default_rng(2)
        system = triclinic_crystal(rng, 5, force_field.allowed_atomic_numbers)
        physics.check_stress_is_strain_derivative(
            force_field, system, step=1e-6, rtol=1e-6, atol=1e-9
        )

    def test_energy_and_forces_continuous_at_cutoff(self, force_field):
        elements = force_field.allowed_atomic_numbers
        physics.check_continuity_at_cutoff(
            force_field,
            tuple(elements[i % len(elements)] for i in range(3)),
            step=1e-4,
            energy_tolerance=1e-9,
            force_tolerance=self.cutoff_force_tolerance,
        )

    def test_prediction_is_float64_under_x64(self, force_field):
        assert force_field.dtype == jnp.float64
        batch = physics.make_batch(force_field, sample_structures(force_field, 1))
        prediction = physics.predict_graph(force_field, batch)
        for leaf in jax.tree.leaves(prediction):
            assert leaf.dtype == jnp.float64

    def test_batch_gives_the_same_results_as_each_structure_alone(self, force_field):
        systems = sample_structures(force_field, 2)
        together = physics.predict_each(force_field, systems)
        sizes = physics.BATCH_SIZES
        assert len(physics.groups_that_fit(force_field, systems, sizes)) == 1
        alone = [physics.predict_each(force_field, [s])[0] for s in systems]
        physics.assert_trees_close(together, alone, rtol=1e-10, atol=1e-12)

    def test_extra_padding_changes_nothing(self, force_field):
        systems = sample_structures(force_field, 3)
        graphs = [physics.make_graph(force_field, system) for system in systems]
        tight = physics.predict_each(
            force_field,
            systems,
            n_node=sum(g.num_nodes for g in graphs) + 1,
            n_edge=sum(g.num_edges for g in graphs),
            n_graph=len(graphs) + 1,
        )
        padded = physics.predict_each(force_field, systems)  # much more padding
        physics.assert_trees_close(tight, padded, rtol=1e-10, atol=1e-12)

    def test_molecule_has_zero_stress_and_padding_graphs_are_zero(self, force_field):
        rng = np.random.default_rng(4)
        elements = force_field.allowed_atomic_numbers
        molecule = random_system(rng, 4, elements, periodic=False)
        batch = physics.make_batch(force_field, [molecule])
        prediction = physics.predict_graph(force_field, batch)
        np.testing.assert_array_equal(prediction.stress, 0.0)
        np.testing.assert_array_equal(prediction.pressure, 0.0)
        assert np.all(np.asarray(prediction.energy[1:]) == 0.0)
        assert prediction.energy[0] != 0.0

    def test_energies_are_those_of_the_prediction(self, force_field):
        batch = physics.make_batch(force_field, sample_structures(force_field, 5))
        physics.assert_trees_close(
            physics.predict_energies(force_field, batch),
            physics.predict_graph(force_field, batch).energy,
            rtol=1e-12,
            atol=1e-12,
        )

    def test_parameter_gradients_are_finite_with_padding(self, force_field):
        """Training differentiates energy, forces and stress with respect to
        the params; zero-length padding edges and zero padding cells must not
        produce NaN."""
        systems = sample_structures(force_field, 7)
        batch = physics.make_batch(force_field, systems)
        assert not np.all(batch.edge_mask) and not np.all(batch.graph_mask)
        gradients = [  # checked in numpy: no small programs to compile
            np.asarray(g)
            for g in jax.tree.leaves(
                physics.loss_gradient(force_field.params, force_field, batch)
            )
        ]
        assert all(np.all(np.isfinite(g)) for g in gradients)
        assert any(np.any(g != 0.0) for g in gradients)

    def test_paired_edges_give_the_same_prediction_as_the_generic_path(
        self, force_field
    ):
        """Networks that use the paired layout (e.g. radial functions evaluated
        once per pair) predict the same as without it, stress included."""
        systems = sample_structures(force_field, 7)
        graphs = [physics.make_graph(force_field, system) for system in systems]
        unpaired = [dataclasses.replace(graph, paired_edges=False) for graph in graphs]
        paired_batch, generic_batch = (
            batch_graphs(group, **physics.BATCH_SIZES) for group in (graphs, unpaired)
        )
        assert paired_batch.paired_edges and not generic_batch.paired_edges
        physics.assert_trees_close(
            physics.predict_graph(force_field, paired_batch),
            physics.predict_graph(force_field, generic_batch),
            rtol=1e-10,
            atol=1e-12,
        )

    def test_zip_round_trip_gives_identical_predictions(self, force_field, tmp_path):
        """Found by class and through the network registry."""
        path = tmp_path / "model.zip"
        save_model_to_zip(path, force_field)
        batch = physics.make_batch(force_field, sample_structures(force_field, 8))
        expected = physics.predict_graph(force_field, batch)
        assert np.any(np.asarray(expected.forces) != 0)
        for model_type in (type(force_field.network), None):
            loaded = load_model_from_zip(model_type, path)
            assert type(loaded.network) is type(force_field.network)
            assert loaded.config == force_field.config
            assert loaded.dataset_info == force_field.dataset_info
            assert loaded.predict_stress == force_field.predict_stress
            assert loaded.dtype == force_field.dtype
            physics.assert_trees_close(loaded.params, force_field.params)
            physics.assert_trees_close(physics.predict_graph(loaded, batch), expected)
