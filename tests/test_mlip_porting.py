"""Code written for the original library, ported by renaming ``mlip.`` to
``mlip_eqx.``: each call as its users write it, and what it must give."""

import dataclasses
import importlib.metadata
import json
import zipfile
from pathlib import Path

import ase
import ase.io
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlip_eqx.data import (
    ASEAtomsReader,
    ChemicalSystem,
    ChemicalSystemsReaderConfig,
    DatasetInfo,
    ExtxyzReader,
    GraphDatasetBuilder,
    Hdf5Reader,
    InvalidStructureError,
)
from mlip_eqx.data.demo import generate_demo_structures
from mlip_eqx.graph.graph import Graph
from mlip_eqx.inference.batched_inference import predict_dataset
from mlip_eqx.models import ForceField, MLIPNetwork
from mlip_eqx.models.loss import MSELoss
from mlip_eqx.models.model_io import load_model_from_zip, save_model_to_zip
from mlip_eqx.testing.physics import predict_graph
from mlip_eqx.training import TrainingLoop, get_default_mlip_optimizer
from mlip_eqx.training.ema import (
    ema_init,
    ema_update,
    exponentially_moving_average,
    get_debiased_params,
)
from mlip_eqx.training.optimizer import weight_decay_mask
from mlip_eqx.utils.config import Config
from tests.helpers.atoms import as_atoms

SPICE_FILE = Path("/work/shared/data/spice2-1000_429_md_0-1.hdf5")
CUTOFF = 4.0  # Å
DATASET_INFO = DatasetInfo(
    atomic_energies_map={29: -1.0, 47: -2.0},
    cutoff_distance_angstrom=CUTOFF,
    avg_num_neighbors=4.0,
)


@dataclasses.dataclass(frozen=True)
class MorseConfig(Config):
    depth: float = 0.5  # eV
    width: float = 1.2  # 1/Å
    distance: float = 2.5  # Å


class Morse(MLIPNetwork):
    """A network as written for the original library: a Config, the two fields,
    and ``__call__(edge_vectors, node_species, senders, receivers)``; no
    ``weight_decay_mask``, no ``paired_edges``."""

    Config = MorseConfig
    config: MorseConfig = eqx.field(static=True)
    dataset_info: DatasetInfo = eqx.field(static=True)
    species_scale: jax.Array

    def __init__(self, config, dataset_info, *, key=None):
        self.config = config
        self.dataset_info = dataset_info
        self.species_scale = jnp.array([1.0, 1.5])

    def __call__(self, edge_vectors, node_species, senders, receivers):
        squared = jnp.sum(edge_vectors**2, axis=-1)
        lengths = jnp.sqrt(jnp.where(squared > 0, squared, 1.0))
        config = self.config
        decay = jnp.exp(-config.width * (lengths - config.distance))
        envelope = jnp.where(lengths < CUTOFF, (1 - (lengths / CUTOFF) ** 2) ** 2, 0.0)
        pair = config.depth * (decay**2 - 2 * decay) * envelope
        pair = (
            jnp.where(squared > 0, pair, 0.0)
            * self.species_scale[node_species[receivers]]
        )
        # Each pair appears as two directed edges: half to each end.
        return (
            0.5
            * jax.ops.segment_sum(pair, receivers, num_segments=node_species.shape[0])
            + self.species_scale[node_species]
        )


def morse_energy(distance: float, scale: float) -> float:
    """The pair energy of ``Morse`` in eV for one pair at ``distance`` Å."""
    config = MorseConfig()
    decay = np.exp(-config.width * (distance - config.distance))
    envelope = (1 - (distance / CUTOFF) ** 2) ** 2
    return config.depth * (decay**2 - 2 * decay) * envelope * scale


def dimer_graph(distance: float) -> Graph:
    """Two copper atoms at ``distance`` Å and one padding graph, built by hand
    without ``dataset_idx`` (as before data sets existed)."""
    return Graph(
        positions=np.array([[0.0, 0.0, 0.0], [distance, 0.0, 0.0], [0.0, 0.0, 0.0]]),
        species=np.array([0, 0, 0]),
        senders=np.array([0, 1, 2]),
        receivers=np.array([1, 0, 2]),
        shifts=np.zeros((3, 3), dtype=np.int32),
        cell=np.zeros((2, 3, 3)),
        n_node=np.array([2, 1]),
        n_edge=np.array([2, 1]),
        energy=np.zeros(2),
        forces=np.zeros((3, 3)),
        stress=np.zeros((2, 3, 3)),
        weight=np.array([1.0, 0.0]),
        has_energy=np.array([False, False]),
        has_forces=np.array([False, False]),
        has_stress=np.array([False, False]),
        node_mask=np.array([True, True, False]),
        edge_mask=np.array([True, True, False]),
        graph_mask=np.array([True, False]),
    )


def test_network_written_for_mlip_decays_every_parameter_and_predicts():
    network = Morse(Morse.Config(), DATASET_INFO)
    force_field = ForceField.from_mlip_network(network, predict_stress=False)
    mask = weight_decay_mask(force_field.params)
    assert jax.tree.leaves(mask) == [True]
    assert jax.tree.leaves(network.weight_decay_mask()) == [True]
    get_default_mlip_optimizer().init(force_field.params)  # masks it

    prediction = force_field(dimer_graph(2.2))
    np.testing.assert_allclose(
        prediction.energy[0], morse_energy(2.2, 1.0) + 2.0, rtol=1e-5
    )
    step = 1e-3
    gradient = (morse_energy(2.2 + step, 1.0) - morse_energy(2.2 - step, 1.0)) / (
        2 * step
    )
    np.testing.assert_allclose(prediction.forces[1, 0], -gradient, rtol=1e-3)
    np.testing.assert_allclose(prediction.forces[0], -prediction.forces[1], atol=1e-6)


def test_graph_built_by_hand_belongs_to_data_set_zero():
    graph = dimer_graph(2.2)
    np.testing.assert_array_equal(graph.dataset_idx, [0, 0])
    assert graph.dataset_idx.dtype == np.int32
    given = dataclasses.replace(graph, dataset_idx=np.array([1, 0]))
    np.testing.assert_array_equal(given.dataset_idx, [1, 0])


def test_ema_as_mlip_calls_it():
    params = {"w": jnp.zeros(3)}
    state = ema_init(params)
    assert state.decay == 0.99  # the original's default
    ema = exponentially_moving_average()
    state = ema.init(params)
    values = [1.0, 3.0, 2.0]
    for value in values:
        state = ema.update(state, {"w": jnp.full(3, value)})
    plain = 0.0
    for value in values:
        plain = 0.99 * plain + 0.01 * value
    expected = plain / (1 - 0.99 ** len(values))  # the original's debiasing
    debiased = get_debiased_params(state, 0.99)
    np.testing.assert_allclose(debiased["w"], expected, rtol=1e-5)
    same = ema_update(ema_init(params, 0.5), {"w": jnp.ones(3)})
    np.testing.assert_array_equal(get_debiased_params(same)["w"], 1.0)
    with pytest.raises(ValueError, match=r"write get_debiased_params\(state\)"):
        get_debiased_params(state, 0.9)
    with pytest.raises(ValueError, match="decay"):
        exponentially_moving_average(1.5)


def test_chemical_system_with_mlip_fields():
    system = ChemicalSystem(
        atomic_numbers=np.array([8, 1, 1]),
        atomic_species=np.array([0, 1, 1]),
        positions=np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]),
        energy=-14.2,
        partial_charges=np.array([-0.8, 0.4, 0.4]),
        charge=0,
        spin_multiplicity=1,
        dipole_moment=np.array([0.1, 0.3, 0.0]),
    )
    np.testing.assert_array_equal(system.atomic_species, [0, 1, 1])
    np.testing.assert_allclose(system.partial_charges, [-0.8, 0.4, 0.4])
    assert (system.charge, system.spin_multiplicity) == (0, 1)
    np.testing.assert_allclose(system.dipole_moment, [0.1, 0.3, 0.0])
    with pytest.raises(InvalidStructureError, match="partial_charges must have"):
        dataclasses.replace(system, partial_charges=np.zeros(2))


def test_readers_fill_mlip_fields(tmp_path):
    atoms = ase.Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    atoms.info.update(
        REF_energy=-14.2, charge=-1, spin_multiplicity=2, dipole_moment=[0.1, 0, 0]
    )
    atoms.arrays["partial_charges"] = np.array([-1.2, 0.1, 0.1])
    atoms.arrays["REF_forces"] = np.zeros((3, 3))
    path = tmp_path / "water.xyz"
    ase.io.write(path, atoms, format="extxyz")
    (system,), _, _ = ExtxyzReader(ExtxyzReader.Config(path)).load()
    assert (system.charge, system.spin_multiplicity) == (-1, 2)
    np.testing.assert_allclose(system.partial_charges, [-1.2, 0.1, 0.1])
    np.testing.assert_allclose(system.dipole_moment, [0.1, 0.0, 0.0])
    assert system.atomic_species is None

    config = ChemicalSystemsReaderConfig(SPICE_FILE, required_labels=("energy",))
    spice, _, _ = Hdf5Reader(config).load()
    assert [s.charge for s in spice] == [-2, -2]  # the attribute 'charge'


def test_stress_parts_sum_to_the_stress_and_match_their_definitions():
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        cell = np.eye(3) * 5.0 + rng.uniform(-0.3, 0.3, (3, 3))
        system = ChemicalSystem(
            atomic_numbers=np.array([29, 47, 29, 47]),
            positions=np.eye(4, 3, k=-1) * 2.5 + rng.uniform(-0.3, 0.3, (4, 3)),
            cell=cell,
            pbc=(True, True, True),
        )
        builder = GraphDatasetBuilder(
            ASEAtomsReader([as_atoms(system)], [as_atoms(system)], required_labels=()),
            GraphDatasetBuilder.Config(graph_cutoff_angstrom=CUTOFF, batch_size=2),
            dataset_info=DATASET_INFO,
        )
        builder.prepare_datasets()
        _, dataset, _ = builder.get_splits()
        force_field = ForceField(Morse(Morse.Config(), DATASET_INFO), True)
        batch = next(iter(dataset))
        prediction = predict_graph(force_field, batch)
        np.testing.assert_allclose(
            prediction.stress_cell + prediction.stress_forces,
            prediction.stress,
            atol=1e-12,
        )
        volume = abs(np.linalg.det(cell))
        real = batch.node_graph_index() == 0
        positions = np.asarray(batch.positions)[real]
        forces = np.asarray(prediction.forces)[real]
        np.testing.assert_allclose(
            prediction.stress_forces[0],
            -np.einsum("nb,nc->bc", forces, positions) / volume,
            atol=1e-12,
        )
        # (1/V) (dE/dh)^T h by central differences of the cell at fixed atoms.
        step, cell_gradient = 1e-6, np.zeros((3, 3))
        for a in range(3):
            for b in range(3):
                energies = []
                for sign in (1.0, -1.0):
                    cells = np.asarray(batch.cell).copy()
                    cells[0, a, b] += sign * step
                    moved = dataclasses.replace(batch, cell=cells)
                    energies.append(float(force_field.energies(moved)[0]))
                cell_gradient[a, b] = (energies[0] - energies[1]) / (2 * step)
        np.testing.assert_allclose(
            prediction.stress_cell[0],
            cell_gradient.T @ cell / volume,
            rtol=1e-6,
            atol=1e-9,
        )
        assert np.abs(prediction.stress_cell[0]).max() > 1e-4  # not trivially 0
        np.testing.assert_allclose(
            prediction.pressure, -np.trace(prediction.stress, axis1=1, axis2=2) / 3
        )

        (structure,) = predict_dataset(force_field, dataset)
        np.testing.assert_allclose(structure.stress_cell, prediction.stress_cell[0])
        np.testing.assert_allclose(structure.stress_forces, prediction.stress_forces[0])
        assert structure.pressure == pytest.approx(float(prediction.pressure[0]))
        without = predict_dataset(ForceField(force_field.network, False), dataset)[0]
        assert without.stress_cell is None and without.stress_forces is None
        assert without.pressure is None


def test_prefetched_splits_train_and_iterate():
    structures = generate_demo_structures(8, seed=4, repeat=1)
    builder = GraphDatasetBuilder(
        ASEAtomsReader(structures[:6], structures[6:]),
        GraphDatasetBuilder.Config(graph_cutoff_angstrom=CUTOFF, batch_size=2),
    )
    builder.prepare_datasets()
    plain = builder.get_splits()
    prefetched = builder.get_splits(prefetch=True, devices=jax.local_devices())
    assert prefetched == plain
    assert builder.get_splits(True, jax.devices()) == plain
    train_set, validation_set, _ = prefetched
    batch = next(iter(train_set))
    assert isinstance(batch, Graph) and batch.num_graphs == train_set.batch_size + 1
    stacked = next(train_set.iter_batches(0, num_devices=len(jax.local_devices())))
    assert stacked.positions.shape[0] == len(jax.local_devices())

    info = builder.dataset_info
    network = Morse(Morse.Config(), info)
    loop = TrainingLoop(
        train_set,
        validation_set,
        ForceField.from_mlip_network(network),
        MSELoss(),
        get_default_mlip_optimizer(),
        TrainingLoop.Config(num_epochs=1),
        should_parallelize=len(jax.devices()) > 1,
    )
    loop.run()
    assert loop.epoch_number == 1


def test_reader_config_keeps_paths_as_lists(tmp_path):
    config = ChemicalSystemsReaderConfig(
        train_dataset_paths=[tmp_path / "a.xyz", "b.xyz"],
        valid_dataset_paths=tmp_path / "c.xyz",
    )
    assert config.train_dataset_paths == [str(tmp_path / "a.xyz"), "b.xyz"]
    assert config.valid_dataset_paths == [str(tmp_path / "c.xyz")]
    assert config.test_dataset_paths == []
    assert config.train_dataset_paths + ["d.xyz"] == [
        str(tmp_path / "a.xyz"),
        "b.xyz",
        "d.xyz",
    ]


def test_model_zip_has_a_version_and_loads_without_one(tmp_path):
    force_field = ForceField.from_mlip_network(Morse(Morse.Config(), DATASET_INFO))
    path = tmp_path / "model.zip"
    save_model_to_zip(path, force_field)
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("mlip_eqx_model.json"))
        entries = {name: archive.read(name) for name in archive.namelist()}
    assert manifest["version"] == importlib.metadata.version("mlip_eqx")

    del manifest["version"]
    old = tmp_path / "old.zip"
    with zipfile.ZipFile(old, "w") as archive:
        for name, content in entries.items():
            if name != "mlip_eqx_model.json":
                archive.writestr(name, content)
        archive.writestr("mlip_eqx_model.json", json.dumps(manifest))
    for archive_path in (path, old):
        loaded = load_model_from_zip(Morse, archive_path)
        np.testing.assert_array_equal(
            loaded.network.species_scale, force_field.network.species_scale
        )
