"""Nequip: parameter counts of the original library, the planned irreps, energy
composition."""

import e3nn_jax as e3nn
import equinox as eqx
import jax
import numpy as np
import pytest

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models import ForceField, Nequip
from mlip_eqx.models.nequip.irreps import layer_irreps
from mlip_eqx.testing import physics
from mlip_eqx.testing.structures import random_system
from tests.helpers.models import DATASET_INFO, counting_dataset_info, num_parameters

# The published nequip_organics_01 hyperparameters.
ORGANICS = Nequip.Config(
    num_layers=5,
    node_irreps="64x0e + 64x0o + 32x1e + 32x1o + 4x2e + 4x2o",
    l_max=2,
    num_bessel=8,
    radial_net_nonlinearity="swish",
    radial_net_n_hidden=64,
    radial_net_n_layers=2,
    scalar_mlp_std=4.0,
)


@pytest.mark.parametrize(
    "config, elements, expected",
    [
        # Counted with mlip 0.2.5's mlip.models_v1.Nequip (the 0.1 architecture)
        # for the same config and elements (mlip_eqx.models.convert maps its
        # weights into ours one to one).
        (ORGANICS, range(1, 16), 1_327_792),
        (Nequip.Config(), (28, 29, 47, 79), 679_664),
    ],
    ids=["organics-15-elements", "default-4-elements"],
)
def test_parameter_count_equals_the_original_library(config, elements, expected):
    assert num_parameters(Nequip(config, counting_dataset_info(elements))) == expected


# mlip 0.2's NequIP (mlip.models.Nequip): its default config, and five layers
# without the residual connection.
MLIP_0_2 = dict(label_zero_irreps=False, self_connection_fan_in_species=False)
MLIP_0_2_DEFAULT = Nequip.Config(
    node_irreps="128x0e + 128x0o + 64x1o + 64x1e + 32x2e + 32x2o", **MLIP_0_2
)
MLIP_0_2_NO_RESIDUAL = ORGANICS.replace(use_residual_connection=False, **MLIP_0_2)


@pytest.mark.parametrize(
    "config, elements, expected",
    [
        # Counted with mlip 0.2.5's mlip.models.Nequip for the same config and
        # elements (mlip_eqx.models.convert.nequip_v2 maps its weights into ours).
        (MLIP_0_2_DEFAULT, (28, 29, 47, 79), 602_688),
        (MLIP_0_2_NO_RESIDUAL, range(1, 16), 362_272),
    ],
    ids=["default-4-elements", "no-residual-15-elements"],
)
def test_parameter_count_equals_mlip_0_2(config, elements, expected):
    assert num_parameters(Nequip(config, counting_dataset_info(elements))) == expected


def test_first_layer_reads_even_scalars_but_labels_all_irreps():
    """The radial MLP weights every labelled path, as in the original library;
    the features hold the irreps that are not identically zero."""
    node_irreps = e3nn.Irreps(ORGANICS.node_irreps)
    first = layer_irreps(node_irreps, node_irreps, e3nn.Irreps("64x0e"), l_max=2)
    assert first.nonzero_in == e3nn.Irreps("64x0e")
    assert first.num_radial_weights == 816
    assert first.gate_in == e3nn.Irreps("64x0e + 64x0o + 72x0e") + e3nn.Irreps(
        "32x1e + 32x1o + 4x2e + 4x2o"
    )
    assert first.nonzero_out == e3nn.Irreps("64x0e + 32x1o + 4x2e")
    second = layer_irreps(node_irreps, first.labelled_out, first.nonzero_out, 2)
    assert second.nonzero_out == e3nn.Irreps("64x0e + 32x1e + 32x1o + 4x2e + 4x2o")
    third = layer_irreps(node_irreps, second.labelled_out, second.nonzero_out, 2)
    assert third.nonzero_out == node_irreps


def test_layers_plan_the_original_library_irreps():
    network = Nequip(ORGANICS, counting_dataset_info(range(1, 16)))
    nonzero = [str(layer.irreps.nonzero_in) for layer in network.layers]
    assert nonzero[0] == "64x0e"
    assert nonzero[-1] == str(e3nn.Irreps(ORGANICS.node_irreps))
    for layer in network.layers:
        assert layer.radial_mlp.weights[-1].shape == (64, 816)
        assert len(layer.radial_columns) == sum(
            c.num_paths * c.num_channels for c in layer.couplings
        )


def node_energies(network: Nequip, system) -> np.ndarray:
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
    config = Nequip.Config(node_irreps="4x0e + 2x1o", l_max=1, radial_net_n_hidden=4)
    raw_info = DatasetInfo(
        atomic_energies_map=DATASET_INFO.atomic_energies_map,
        cutoff_distance_angstrom=DATASET_INFO.cutoff_distance_angstrom,
        avg_num_neighbors=DATASET_INFO.avg_num_neighbors,
    )
    key = jax.random.key(3)
    raw = Nequip(config.replace(atomic_energies="zero"), raw_info, key=key)
    full = Nequip(config, DATASET_INFO, key=key)
    system = random_system(np.random.default_rng(1), 6)
    species = physics.make_graph(ForceField(full), system).species
    readout = node_energies(raw, system)
    e0 = np.array(list(DATASET_INFO.atomic_energies_map.values()))[species]
    expected = DATASET_INFO.scaling_mean + DATASET_INFO.scaling_stdev * readout + e0
    np.testing.assert_allclose(node_energies(full, system), expected, rtol=1e-5)
    assert np.abs(readout).max() > 1e-3


def test_every_parameter_gets_weight_decay_and_a_missing_energy_raises():
    network = Nequip(Nequip.Config(node_irreps="4x0e", l_max=1), DATASET_INFO)
    assert all(jax.tree.leaves(network.weight_decay_mask()))
    with pytest.raises(ValueError, match="no energy given for Au"):
        Nequip(
            Nequip.Config(node_irreps="4x0e", atomic_energies={29: 1.0, 47: 1.0}),
            DATASET_INFO,
        )
