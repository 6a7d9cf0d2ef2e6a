"""transfer_params and with_dataset_info: what is copied, warm-started, scaled,
and the errors for models that do not fit."""

import dataclasses

import jax
import numpy as np
import pytest

from mlip_eqx.data.graph_creation import graph_from_chemical_system, species_table
from mlip_eqx.graph import batch_graphs
from mlip_eqx.models import ForceField, Mace
from mlip_eqx.models.params_transfer import (
    ParameterTransferImpossibleError,
    transfer_params,
    with_dataset_info,
    with_new_readout_head,
)
from mlip_eqx.testing.physics import predict_energies
from mlip_eqx.testing.structures import some_systems
from mlip_eqx.utils.trees import flatten_with_key_paths
from tests.helpers.models import DATASET_INFO
from tests.helpers.pair_network import PairNetwork

CONFIG = Mace.Config(num_channels=8, l_max=1, correlation=2, num_layers=2)


def mace(config=CONFIG, seed=0, info=DATASET_INFO):
    return ForceField(Mace(config, info, key=jax.random.key(seed)))


def batch():
    table = species_table(DATASET_INFO.allowed_atomic_numbers)
    graphs = [graph_from_chemical_system(s, 4.0, table) for s in some_systems(0)]
    return batch_graphs(graphs, n_node=20, n_edge=400, n_graph=4)


def by_path(params):
    return {path: np.asarray(leaf) for path, leaf in flatten_with_key_paths(params)}


def test_shared_arrays_are_copied_and_new_heads_warm_started_from_head_0():
    source = mace(seed=1)
    destination = mace(dataclasses.replace(CONFIG, num_readout_heads=2), seed=2)
    moved = by_path(transfer_params(source.params, destination.params))
    original = by_path(source.params)
    assert any(".readouts[1]." in path for path in moved)
    for path, value in moved.items():
        origin = path.replace(".readouts[1].", ".readouts[0].")
        np.testing.assert_array_equal(value, original[origin])


def test_scale_factor_0_gives_new_heads_of_zeros_and_the_same_energies():
    # Data set 0's structures use head 0: a new head changes nothing for them.
    source = mace(seed=1)
    two_heads = mace(dataclasses.replace(CONFIG, num_readout_heads=2), seed=2)
    moved = two_heads.with_params(
        transfer_params(source.params, two_heads.params, scale_factor=0.0)
    )
    new_head = [v for p, v in by_path(moved.params).items() if ".readouts[1]." in p]
    assert new_head and all(not v.any() for v in new_head)
    graphs = batch()
    np.testing.assert_allclose(
        predict_energies(moved, graphs), predict_energies(source, graphs), rtol=1e-6
    )


def test_new_heads_without_warm_start_are_scaled_initial_values():
    source = mace(seed=1)
    two_heads = mace(dataclasses.replace(CONFIG, num_readout_heads=2), seed=2)
    moved = by_path(
        transfer_params(
            source.params, two_heads.params, scale_factor=0.5, warm_start_heads=False
        )
    )
    initial, original = by_path(two_heads.params), by_path(source.params)
    for path, value in moved.items():
        if ".readouts[1]." in path:
            np.testing.assert_allclose(value, 0.5 * initial[path], rtol=1e-7)
        else:
            np.testing.assert_array_equal(value, original[path])


def test_a_shape_mismatch_names_the_path_and_both_shapes():
    wider = mace(dataclasses.replace(CONFIG, num_channels=16))
    with pytest.raises(
        ParameterTransferImpossibleError,
        match=r"\.network\.embedding has shape \(3, 8\) in the source but "
        r"\.network\.embedding has \(3, 16\)",
    ):
        transfer_params(mace().params, wider.params)


def test_source_arrays_without_a_place_are_an_error():
    two_heads = mace(dataclasses.replace(CONFIG, num_readout_heads=2))
    with pytest.raises(ParameterTransferImpossibleError, match=r"readouts\[1\]"):
        transfer_params(two_heads.params, mace().params)


def test_with_dataset_info_shifts_energies_by_the_new_reference_energies():
    ff = mace(seed=3)
    shift = {29: 0.5, 47: -0.25, 79: 1.0}
    new_info = dataclasses.replace(
        DATASET_INFO,
        atomic_energies_map={
            z: e + shift[z] for z, e in DATASET_INFO.atomic_energies_map.items()
        },
    )
    refitted = with_dataset_info(ff, new_info)
    assert refitted.dataset_info == new_info
    graphs = batch()
    table = DATASET_INFO.allowed_atomic_numbers
    expected_shift = [
        sum(shift[table[s]] for s in graphs.species[start : start + n])
        for start, n in zip(np.cumsum([0, *graphs.n_node[:-1]]), graphs.n_node)
    ]
    difference = np.asarray(
        predict_energies(refitted, graphs) - predict_energies(ff, graphs)
    )
    np.testing.assert_allclose(difference[:3], expected_shift[:3], atol=1e-5)
    with pytest.raises(ValueError, match="the elements differ"):
        with_dataset_info(
            ff, dataclasses.replace(DATASET_INFO, atomic_energies_map={29: 0.0})
        )
    with pytest.raises(ValueError, match="cutoff 5.0 Å instead of the model's 4.0"):
        with_dataset_info(
            ff, dataclasses.replace(DATASET_INFO, cutoff_distance_angstrom=5.0)
        )


def test_a_network_without_readout_heads_cannot_get_a_new_head():
    network = PairNetwork(PairNetwork.Config(), DATASET_INFO)
    assert not network.has_readout_heads and Mace.has_readout_heads
    with pytest.raises(ValueError, match="PairNetwork does not declare has_readout"):
        with_new_readout_head(
            ForceField(network), DATASET_INFO.with_new_dataset("second")
        )
