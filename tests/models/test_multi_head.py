"""Multi-head models: a structure's data set selects its readout head and its
reference energies, in a batch as alone, by name in inference and the ASE
calculator, and after a zip round trip; for every network with heads."""

import dataclasses

import ase
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.data.graph_creation import graph_from_chemical_system, species_table
from mlip_eqx.data.readers.dataset_index_reader import in_dataset
from mlip_eqx.graph import batch_graphs
from mlip_eqx.inference import run_batched_inference
from mlip_eqx.models import ForceField, InferenceContext, Mace, Nequip, Visnet
from mlip_eqx.models.model_io import load_model_from_zip, save_model_to_zip
from mlip_eqx.models.params_transfer import with_new_readout_head
from mlip_eqx.simulation.ase.mlip_ase_calculator import MLIPForceFieldASECalculator
from mlip_eqx.testing.physics import predict_graph
from mlip_eqx.testing.structures import some_systems
from tests.helpers.models import DATASET_INFO

TWO_DATASETS = DATASET_INFO.with_new_dataset("shifted", {29: -1.0, 47: -2.0, 79: -0.5})
NETWORKS = {
    "mace": (Mace, Mace.Config(num_channels=8, l_max=1, correlation=2)),
    "nequip": (
        Nequip,
        Nequip.Config(node_irreps="8x0e + 4x1o", l_max=1, radial_net_n_hidden=8),
    ),
    "visnet": (
        Visnet,
        Visnet.Config(num_layers=1, num_channels=8, num_heads=2, num_rbf=6),
    ),
}


def two_head_model(name: str) -> ForceField:
    """A two-head model whose head 1 differs from head 0 (perturbed weights)."""
    network_class, config = NETWORKS[name]
    config = dataclasses.replace(config, num_readout_heads=2)
    force_field = ForceField(network_class(config, TWO_DATASETS, key=jax.random.key(1)))

    def head_1(model):
        return (
            model.network.readouts[1]
            if name != "mace"
            else [layer.readouts[1] for layer in model.network.layers]
        )

    return eqx.tree_at(
        head_1,
        force_field,
        replace_fn=lambda head: jax.tree.map(lambda w: 1.5 * w + 0.1, head),
    )


def batch_of(systems):
    table = species_table(DATASET_INFO.allowed_atomic_numbers)
    graphs = [graph_from_chemical_system(s, 4.0, table) for s in systems]
    return batch_graphs(graphs, n_node=24, n_edge=600, n_graph=6)


def test_dataset_info_with_several_data_sets_validates_and_round_trips():
    info = TWO_DATASETS
    assert info.num_datasets == 2
    assert info.dataset_names == ("pretrained", "shifted")
    assert info.dataset_index("shifted") == 1
    assert info.allowed_atomic_numbers == [29, 47, 79]
    assert DatasetInfo.from_dict(info.to_dict()) == info
    assert hash(DatasetInfo.from_dict(info.to_dict())) == hash(info)
    single = DatasetInfo.from_dict(DATASET_INFO.to_dict())
    assert single == DATASET_INFO and single.num_datasets == 1
    with pytest.raises(ValueError, match=r"No data set is called 'pbe'.*shifted"):
        info.dataset_index("pbe")
    with pytest.raises(ValueError, match=r"atomic_energies_map\[1\].*differ in Ag"):
        DatasetInfo(({29: 1.0, 47: 1.0}, {29: 2.0}), 4.0)
    with pytest.raises(ValueError, match="2 names but there are 3 E0 maps"):
        DatasetInfo(({29: 1.0},) * 3, 4.0, dataset_name=["a", "b"])
    with pytest.raises(ValueError, match="duplicates"):
        DatasetInfo(({29: 1.0},) * 2, 4.0, dataset_name=["a", "a"])
    with pytest.raises(ValueError, match="already has a data set called 'shifted'"):
        info.with_new_dataset("shifted")


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_each_structure_uses_its_data_sets_head_and_reference_energies(name):
    force_field = two_head_model(name)
    systems = some_systems(0)
    mixed = [in_dataset([s], i % 2)[0] for i, s in enumerate(systems)]
    predicted = predict_graph(force_field, batch_of(mixed))
    for index, system in enumerate(mixed):
        alone = predict_graph(
            force_field.replace_inference_context(
                InferenceContext(dataset_idx=index % 2)
            ),
            batch_of([in_dataset([system], 0)[0]]),
        )
        np.testing.assert_allclose(
            predicted.energy[index], alone.energy[0], rtol=1e-5, atol=1e-5
        )
    head_0 = force_field.replace_inference_context(InferenceContext(dataset_idx=0))
    head_1 = force_field.replace_inference_context(InferenceContext("shifted"))
    batch = batch_of(systems)
    forces_0, forces_1 = (predict_graph(m, batch).forces for m in (head_0, head_1))
    assert not np.allclose(forces_0, forces_1, atol=1e-4)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_a_new_head_starts_as_head_0_with_its_own_reference_energies(name):
    network_class, config = NETWORKS[name]
    pretrained = ForceField(network_class(config, DATASET_INFO, key=jax.random.key(2)))
    tuned = with_new_readout_head(pretrained, TWO_DATASETS)
    assert tuned.config.num_readout_heads == 2
    batch = batch_of(some_systems(1))
    before = predict_graph(pretrained, batch)
    old_head = predict_graph(
        tuned.replace_inference_context(InferenceContext(dataset_idx=0)), batch
    )
    new_head = predict_graph(
        tuned.replace_inference_context(InferenceContext("shifted")), batch
    )
    np.testing.assert_allclose(old_head.energy, before.energy, rtol=1e-6)
    np.testing.assert_allclose(new_head.forces, before.forces, rtol=1e-5, atol=1e-6)
    # Only the E0 differ: data set 1's minus data set 0's, summed over atoms.
    shift = np.zeros(batch.num_graphs)
    e0 = [TWO_DATASETS.atomic_energies_maps[k] for k in (0, 1)]
    elements = TWO_DATASETS.allowed_atomic_numbers
    for node, graph in enumerate(np.asarray(batch.node_graph_index())):
        if batch.node_mask[node]:
            z = elements[batch.species[node]]
            shift[graph] += e0[1][z] - e0[0][z]
    np.testing.assert_allclose(
        new_head.energy - before.energy, shift, rtol=1e-5, atol=1e-4
    )
    with pytest.raises(ValueError, match="no more than the model's"):
        with_new_readout_head(tuned, TWO_DATASETS)


def test_heads_and_data_sets_must_match():
    with pytest.raises(
        ValueError, match="num_readout_heads=2 but the DatasetInfo has 3"
    ):
        Mace(
            Mace.Config(num_channels=4, l_max=1, num_readout_heads=2),
            TWO_DATASETS.with_new_dataset("third"),
        )
    model = ForceField(Mace(Mace.Config(num_channels=4, l_max=1), TWO_DATASETS))
    with pytest.raises(ValueError, match="dataset_idx=2 is out of range"):
        model.replace_inference_context(InferenceContext(dataset_idx=2))
    with pytest.raises(ValueError, match="'shifted' is data set 1, but dataset_idx=0"):
        InferenceContext("shifted", 0).resolve(TWO_DATASETS)
    with pytest.raises(ValueError, match="must be resolved"):
        ForceField(model.network, inference_context=InferenceContext("shifted"))


def test_one_head_shared_by_two_data_sets_differs_only_by_reference_energies():
    with jax.enable_x64(True):  # the two programs round alike only to float64
        model = ForceField(Mace(Mace.Config(num_channels=4, l_max=1), TWO_DATASETS))
        batch = batch_of(some_systems(2))
        first = predict_graph(model, batch)
        second = predict_graph(
            model.replace_inference_context(InferenceContext("shifted")), batch
        )
    assert first.forces.dtype == np.float64
    np.testing.assert_allclose(first.forces, second.forces, rtol=1e-12, atol=1e-14)
    assert not np.allclose(first.energy[:3], second.energy[:3])


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_two_head_zip_round_trip_inference_and_calculator_select_by_name(
    name, tmp_path
):
    force_field = two_head_model(name)
    path = tmp_path / "two_heads.zip"
    save_model_to_zip(path, force_field)
    loaded = load_model_from_zip(None, path)
    assert loaded.dataset_info == TWO_DATASETS
    systems = some_systems(3)
    atoms_list = [
        ase.Atoms(s.atomic_numbers, s.positions, cell=s.cell, pbc=s.pbc)
        for s in systems
    ]
    for head in ("pretrained", "shifted"):
        expected = predict_graph(
            force_field.replace_inference_context(InferenceContext(head)),
            batch_of(systems),
        )
        inferred = run_batched_inference(atoms_list, loaded, dataset_name=head)
        for index, prediction in enumerate(inferred):
            np.testing.assert_allclose(
                prediction.energy, expected.energy[index], rtol=1e-5
            )
        if head == "pretrained":  # the calculator: checked on the other head
            continue
        atoms = atoms_list[0].copy()
        atoms.calc = MLIPForceFieldASECalculator(atoms, 1.25, loaded, dataset_name=head)
        np.testing.assert_allclose(
            atoms.get_potential_energy(), expected.energy[0], rtol=1e-5
        )
        np.testing.assert_allclose(
            atoms.get_forces(), np.asarray(expected.forces[:5]), rtol=1e-4, atol=1e-5
        )
    with pytest.raises(ValueError, match="No data set is called 'pbe'"):
        run_batched_inference(atoms_list, loaded, dataset_name="pbe")


def test_gradients_reach_only_the_heads_of_the_batch_data_sets():
    force_field = two_head_model("mace")
    batch = batch_of(some_systems(4))  # all in data set 0

    def energy(params):
        return jnp.sum(force_field.with_params(params).energies(batch))

    gradient = jax.jit(jax.grad(energy))(force_field.params)
    for layer in gradient.network.layers:
        head_0, head_1 = (jax.tree.leaves(head) for head in layer.readouts)
        assert all(np.all(np.asarray(g) == 0) for g in head_1)
        assert any(np.any(np.asarray(g) != 0) for g in head_0)
