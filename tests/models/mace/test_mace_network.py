"""Mace: parameter counts of the original library, energy composition, errors."""

import dataclasses

import equinox as eqx
import jax
import numpy as np
import pytest

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models import ForceField, Mace, MLIPNetwork
from mlip_eqx.testing import physics
from mlip_eqx.testing.structures import random_system
from mlip_eqx.utils.config import Config
from tests.helpers.models import DATASET_INFO, num_parameters

# Cu, Ag, Au, Ni as in the original library's counts below.
FOUR_ELEMENTS_INFO = DatasetInfo(
    atomic_energies_map={28: -1.0, 29: -2.0, 47: -3.0, 79: -4.0},
    cutoff_distance_angstrom=5.0,
    avg_num_neighbors=12.0,
    avg_r_min_angstrom=2.2,
)


@pytest.mark.parametrize(
    "config, expected",
    [
        # Counted with mlip 0.1.1 (PyPI) for the same elements and settings; also the
        # count of mace-torch for 32 channels, l_max 2, correlation 3, 8 Bessel.
        (Mace.Config(num_channels=32, l_max=2), 96_432),
        (Mace.Config(), 1_307_792),
    ],
    ids=["small", "default"],
)
def test_parameter_count_equals_the_original_library(config, expected):
    assert num_parameters(Mace(config, FOUR_ELEMENTS_INFO)) == expected


def test_symmetric_basis_needs_fewer_weights_and_num_species_adds_slots():
    small = Mace.Config(num_channels=8, l_max=2)
    full = num_parameters(Mace(small, FOUR_ELEMENTS_INFO))
    symmetric = Mace(
        small.replace(symmetric_tensor_product_basis=True), FOUR_ELEMENTS_INFO
    )
    assert num_parameters(symmetric) < full
    wider = Mace(small.replace(num_species=6), FOUR_ELEMENTS_INFO)
    assert wider.num_species == 6 and num_parameters(wider) > full


def test_default_config_gives_finite_invariant_energies_and_forces():
    force_field = ForceField.from_mlip_network(Mace(Mace.Config(), DATASET_INFO))
    rng = np.random.default_rng(0)
    system = random_system(rng, 4, periodic=False)
    sizes = {"n_node": 12, "n_edge": 64, "n_graph": 3}
    physics.check_invariance(
        force_field,
        system,
        rng,
        reflect=True,
        rtol=1e-5,
        atol=1e-5,
        **sizes,
    )


def node_energies(network: Mace, system) -> np.ndarray:
    graph = physics.make_graph(ForceField(network), system)
    call = eqx.filter_jit(lambda net, *args: net(*args))
    return np.asarray(
        call(
            network,
            graph.edge_vectors(),
            graph.species,
            graph.senders,
            graph.receivers,
        )
    )


def test_node_energy_is_scaled_readout_plus_atomic_energy():
    config = Mace.Config(num_channels=8, l_max=1, correlation=2)
    raw_info = DatasetInfo(
        atomic_energies_map=DATASET_INFO.atomic_energies_map,
        cutoff_distance_angstrom=DATASET_INFO.cutoff_distance_angstrom,
        avg_num_neighbors=DATASET_INFO.avg_num_neighbors,
        avg_r_min_angstrom=DATASET_INFO.avg_r_min_angstrom,
    )
    key = jax.random.key(3)
    raw = Mace(config.replace(atomic_energies="zero"), raw_info, key=key)
    full = Mace(config, DATASET_INFO, key=key)
    custom = Mace(
        config.replace(atomic_energies={29: 1.0, 47: 2.0, 79: 3.0, 1: 9.0}),
        DATASET_INFO,
        key=key,
    )
    system = random_system(np.random.default_rng(1), 6)
    species = physics.make_graph(ForceField(full), system).species
    readout = node_energies(raw, system)
    e0 = np.array(list(DATASET_INFO.atomic_energies_map.values()))[species]
    expected = DATASET_INFO.scaling_mean + DATASET_INFO.scaling_stdev * readout + e0
    np.testing.assert_allclose(node_energies(full, system), expected, rtol=1e-5)
    shifted = np.array([1.0, 2.0, 3.0])[species] - e0
    np.testing.assert_allclose(
        node_energies(custom, system), expected + shifted, rtol=1e-5
    )
    assert np.abs(readout).max() > 1e-3


def test_bad_species_settings_raise():
    with pytest.raises(ValueError, match="num_species=2"):
        Mace(Mace.Config(num_channels=4, l_max=1, num_species=2), DATASET_INFO)
    with pytest.raises(ValueError, match="no energy given for Au"):
        Mace(
            Mace.Config(num_channels=4, l_max=1, atomic_energies={29: 1.0, 47: 1.0}),
            DATASET_INFO,
        )


def test_network_without_config_class_is_rejected():
    class Broken(MLIPNetwork):
        config: Config
        dataset_info: DatasetInfo

        def __call__(
            self, edge_vectors, node_species, senders, receivers, paired_edges=False
        ):
            return node_species

    with pytest.raises(TypeError, match="Config"):
        Broken(Mace.Config(), DATASET_INFO)


def test_radial_normalisation_off_is_the_network_without_a_typical_shortest_edge():
    """mlip's radial normalisation (on by default) scales the radial embedding by
    the dataset's ``avg_r_min``; off, the network is the one without it."""
    config = Mace.Config(num_channels=8, l_max=1, correlation=2, num_layers=1)
    unscaled_info = dataclasses.replace(DATASET_INFO, avg_r_min_angstrom=None)
    key = jax.random.key(3)
    scaled = ForceField(Mace(config, DATASET_INFO, key=key))
    off = ForceField(
        Mace(
            dataclasses.replace(config, normalise_radial_embedding=False),
            DATASET_INFO,
            key=key,
        )
    )
    no_r_min = ForceField(Mace(config, unscaled_info, key=key))
    assert scaled.network.avg_r_min == DATASET_INFO.avg_r_min_angstrom
    assert off.network.avg_r_min is None
    rng = np.random.default_rng(2)
    batch = physics.make_batch(scaled, [random_system(rng, 6) for _ in range(3)])
    forces = {
        name: np.asarray(physics.predict_graph(model, batch).forces)
        for name, model in (("scaled", scaled), ("off", off), ("none", no_r_min))
    }
    np.testing.assert_array_equal(forces["off"], forces["none"])
    # The embedding is scaled up (x3 here): the untrained forces grow.
    assert np.abs(forces["scaled"]).max() > 2 * np.abs(forces["off"]).max()
