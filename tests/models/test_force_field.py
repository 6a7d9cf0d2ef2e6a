"""ForceField: API, dtypes, compilation, parameters, stress sign (the tests that
every network runs are in test_networks.py)."""

import dataclasses

import ase
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.calculators.emt import EMT

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models import ForceField, Mace, MLIPNetwork, Prediction
from mlip_eqx.testing import physics
from mlip_eqx.testing.structures import random_system, some_systems
from tests.helpers.models import DATASET_INFO, ELEMENTS, NETWORK_CONFIGS, force_field


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def test_prediction_is_float32_without_x64_and_omits_stress_unless_asked():
    rng = np.random.default_rng(0)
    system = random_system(rng, 4)
    for predict_stress in (False, True):
        ff = force_field("mace-tiny", predict_stress=predict_stress)
        batch = physics.make_batch(ff, [system])
        assert batch.positions.dtype == np.float64
        prediction = physics.predict_graph(ff, batch)
        assert isinstance(prediction, Prediction)
        assert prediction.energy.dtype == jnp.float32 == ff.dtype
        assert prediction.energy.shape == (batch.num_graphs,)
        assert prediction.forces.shape == (batch.num_nodes, 3)
        if predict_stress:
            assert prediction.stress.shape == (batch.num_graphs, 3, 3)
            assert prediction.pressure.shape == (batch.num_graphs,)
        else:
            assert prediction.stress is None and prediction.pressure is None
    # The stress-free call gives the same energies and forces.
    with_stress, without_stress = (
        physics.predict_each(force_field("mace-tiny", predict_stress=flag), [system])[0]
        for flag in (True, False)
    )
    np.testing.assert_allclose(with_stress.energy, without_stress.energy, rtol=1e-6)
    np.testing.assert_allclose(with_stress.forces, without_stress.forces, atol=1e-5)


def test_compiles_once_per_padded_shape():
    traces = []

    @eqx.filter_jit
    def call(ff: ForceField, graph) -> Prediction:
        traces.append(graph.num_nodes)
        return ff(graph)

    ff = force_field("mace", predict_stress=False)
    sizes = {"n_node": 24, "n_edge": 512, "n_graph": 4}
    rng = np.random.default_rng(5)
    first = physics.make_batch(
        ff, [random_system(rng, 5), random_system(rng, 3)], **sizes
    )
    second = physics.make_batch(ff, [random_system(rng, 8)], **sizes)
    call(ff, first)
    call(ff, second)
    doubled = jax.tree.map(lambda leaf: 2.0 * leaf, ff.params)
    call(ff.with_params(doubled), jax.tree.map(jnp.asarray, second))
    assert len(traces) == 1
    call(ff, physics.make_batch(ff, [random_system(rng, 5)], **{**sizes, "n_node": 32}))
    assert len(traces) == 2


def test_from_mlip_network_draws_parameters_from_the_seed():
    network_class, config = NETWORK_CONFIGS["mace"]
    network = network_class(config, DATASET_INFO, key=jax.random.key(123))
    first = ForceField.from_mlip_network(network, predict_stress=True, seed=1)
    again = ForceField.from_mlip_network(network, predict_stress=True, seed=1)
    other = ForceField.from_mlip_network(network, seed=2)
    assert first.predict_stress and not other.predict_stress
    physics.assert_trees_close(first.params, again.params, rtol=0, atol=0)
    for a, b, original in zip(
        jax.tree.leaves(first.params),
        jax.tree.leaves(other.params),
        jax.tree.leaves(eqx.filter(network, eqx.is_inexact_array)),
    ):
        assert a.shape == b.shape == original.shape
        assert not np.array_equal(a, b) and not np.array_equal(a, original)
    default = ForceField.from_mlip_network(network)
    physics.assert_trees_close(
        default.params, ForceField.from_mlip_network(network, seed=42).params, 0, 0
    )


def test_properties():
    ff = force_field("mace")
    assert ff.cutoff_distance == DATASET_INFO.cutoff_distance_angstrom
    assert ff.allowed_atomic_numbers == list(ELEMENTS)
    assert ff.config == NETWORK_CONFIGS["mace"][1]
    assert ff.dataset_info == DATASET_INFO
    assert isinstance(ff.network, MLIPNetwork)
    assert isinstance(ff.config, Mace.Config)


def test_params_are_the_trainable_arrays_and_rebuild_the_force_field(x64):
    ff = force_field("mace")
    params = ff.params
    leaves = jax.tree.leaves(params)
    assert leaves and all(eqx.is_inexact_array(leaf) for leaf in leaves)
    assert sum(leaf.size for leaf in leaves) == sum(
        leaf.size for leaf in jax.tree.leaves(ff) if eqx.is_array(leaf)
    )
    systems = some_systems(6)
    same = ff.with_params(params)
    physics.assert_trees_close(
        physics.predict_each(same, systems), physics.predict_each(ff, systems), 0, 0
    )
    changed = ff.with_params(jax.tree.map(lambda leaf: 1.1 * leaf, params))
    before = physics.predict_each(ff, systems)[0]
    after = physics.predict_each(changed, systems)[0]
    assert abs(before.energy - after.energy) > 1e-6


def test_partition_splits_trainable_arrays_from_the_rest():
    ff = force_field("mace")
    params, static = ff.partition()
    assert all(eqx.is_inexact_array(leaf) for leaf in jax.tree.leaves(params))
    assert not any(eqx.is_array(leaf) for leaf in jax.tree.leaves(static))
    physics.assert_trees_close(params, ff.params, rtol=0, atol=0)
    assert eqx.tree_equal(eqx.combine(params, static), ff)
    doubled = jax.tree.map(lambda leaf: 2.0 * leaf, params)
    assert eqx.tree_equal(ff.with_params(doubled), eqx.combine(doubled, static))


def emt_triclinic_copper() -> ase.Atoms:
    cell = np.array([[3.7, 0.1, 0.0], [0.6, 3.5, 0.2], [-0.3, 0.4, 3.9]])
    fractional = np.array(
        [[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]
    )
    atoms = ase.Atoms("Cu4", scaled_positions=fractional, cell=cell, pbc=True)
    atoms.rattle(0.05, seed=3)
    return atoms


def test_finite_difference_stress_follows_ase_sign_convention():
    """The strain derivative used by the stress checks reproduces ASE's EMT stress,
    so a force field that passes those checks has ASE's sign convention."""
    atoms = emt_triclinic_copper()
    atoms.calc = EMT()
    reference = atoms.get_stress(voigt=False)
    assert np.abs(reference).max() > 1e-3

    def emt_energy(system: ChemicalSystem) -> float:
        strained = ase.Atoms(
            numbers=system.atomic_numbers,
            positions=system.positions,
            cell=system.cell,
            pbc=True,
            calculator=EMT(),
        )
        return strained.get_potential_energy()

    system = ChemicalSystem(
        atomic_numbers=atoms.numbers,
        positions=atoms.positions,
        cell=np.array(atoms.cell),
        pbc=atoms.pbc,
    )
    stress = physics.finite_difference_stress(emt_energy, system, step=1e-5)
    np.testing.assert_allclose(stress, reference, rtol=1e-5, atol=1e-8)


def test_float32_totals_with_dft_reference_energies_lose_only_a_last_rounding():
    """Molecules of 3BPA's composition (27 atoms) with its isolated-atom E0s:
    the total (-17,500 eV) is mostly E0. float32 totals stay within one float32
    spacing (1.95 meV there) of float64 arithmetic on the same parameters; a
    plain float32 running sum of the node energies was up to 1.7 spacings off
    (3.3 meV), this sum 0.6 (64 molecules)."""
    reference = {1: -13.587, 6: -1029.489, 7: -1484.873, 8: -2041.840}
    info = DatasetInfo(
        atomic_energies_map=reference,
        cutoff_distance_angstrom=3.0,
        avg_num_neighbors=6.0,
        avg_r_min_angstrom=1.0,
    )
    config = Mace.Config(num_channels=8, l_max=1, correlation=2, num_layers=1)
    low = ForceField.from_mlip_network(Mace(config, info), predict_stress=False)
    rng = np.random.default_rng(0)
    composition = [1] * 12 + [6] * 12 + [7] * 2 + [8]  # 3BPA, C12H12N2O
    systems = [
        dataclasses.replace(
            random_system(rng, 27, periodic=False),
            atomic_numbers=rng.permutation(composition),
        )
        for _ in range(16)
    ]
    sizes = {"n_node": 16 * 27 + 1, "n_edge": 16 * 27 * 30, "n_graph": 17}
    energies_low = physics.predict_energies(
        low, physics.make_batch(low, systems, **sizes)
    )
    with jax.enable_x64(True):
        as_float64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), low.params)
        high = low.with_params(as_float64)
        batch = physics.make_batch(high, systems, **sizes)
        energies_high = np.asarray(physics.predict_energies(high, batch))
    assert energies_low.dtype == jnp.float32
    error = np.abs(np.asarray(energies_low[:16], np.float64) - energies_high[:16])
    spacing = np.spacing(np.abs(energies_high[:16]).astype(np.float32))
    assert np.all(np.abs(energies_high[:16]) > 16384.0)  # spacing 1.95 meV
    assert np.max(error / spacing) < 1.0, error / spacing
