"""Metrics are values of the whole set: independent of devices, padding, packing."""

import dataclasses
import json
import textwrap

import jax
import numpy as np
import pytest

from mlip_eqx.data import ASEAtomsReader, GraphDatasetBuilder
from mlip_eqx.data.demo import generate_demo_structures
from mlip_eqx.models import ForceField
from mlip_eqx.models.loss import MSELoss
from mlip_eqx.testing.physics import predict_graph
from mlip_eqx.training import evaluate, make_eval_step, make_mesh
from tests.helpers.pair_network import PairNetwork
from tests.helpers.subprocesses import run_script


def build_validation_set():
    """20 EMT cells of 4 and 32 atoms in 10 batches of 2 of two shapes, and their
    info."""
    small = generate_demo_structures(12, seed=8, repeat=1)
    large = generate_demo_structures(8, seed=9, repeat=2)
    structures = [atoms for pair in zip(small, large) for atoms in pair]
    structures += small[len(large) :]
    reader = ASEAtomsReader(structures, structures)
    builder = GraphDatasetBuilder(
        reader,
        GraphDatasetBuilder.Config(
            graph_cutoff_angstrom=4.0, batch_size=2, max_n_node=32, max_n_edge=600
        ),
    )
    builder.prepare_datasets()
    _, validation, _ = builder.get_splits()
    return validation, builder.dataset_info


def pair_force_field(dataset_info):
    network = PairNetwork(PairNetwork.Config(), dataset_info)
    return ForceField.from_mlip_network(network, predict_stress=True, seed=1)


def test_set_metrics_equal_numpy_over_every_real_structure():
    validation, info = build_validation_set()
    force_field = pair_force_field(info)
    mesh = make_mesh(jax.devices()[:1])
    loss = MSELoss(extended_metrics=True)
    metrics = evaluate(
        make_eval_step(force_field, loss, mesh), force_field.params, validation, mesh, 0
    )
    assert validation.num_batches() == 10 and len(validation.batch_shapes) == 2

    energy_errors, force_errors, per_atom_errors, energy_labels = [], [], [], []
    for batch in validation.iter_batches(0):
        prediction = predict_graph(force_field, batch)
        for graph in np.flatnonzero(batch.graph_mask):
            nodes = batch.node_graph_index() == graph
            error = float(prediction.energy[graph]) - float(batch.energy[graph])
            energy_errors.append(error)
            per_atom_errors.append(error / int(batch.n_node[graph]))
            energy_labels.append(float(batch.energy[graph]))
            force_errors.append(
                np.asarray(prediction.forces)[nodes] - batch.forces[nodes]
            )
    energy_errors = np.array(energy_errors)
    force_errors = np.concatenate(force_errors).ravel()
    assert len(energy_errors) == len(validation.graphs) == 20

    def rms(values):
        return np.sqrt(np.mean(np.square(values)))

    expected = {
        "mae_e": np.mean(np.abs(energy_errors)),
        "rmse_e": rms(energy_errors),
        "rmse_e_per_atom": rms(per_atom_errors),
        "rel_rmse_e": rms(energy_errors) / rms(energy_labels),
        "mae_f": np.mean(np.abs(force_errors)),
        "rmse_f": rms(force_errors),
        "q95_f": np.quantile(np.abs(force_errors), 0.95),
        "q95_e": np.quantile(np.abs(energy_errors), 0.95),
    }
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, rel=2e-5), name
    # The set's RMSE is not the mean of the per-batch RMSEs (the old bug).
    per_batch = [rms(energy_errors[i : i + 2]) for i in range(0, len(energy_errors), 2)]
    assert abs(np.mean(per_batch) - metrics["rmse_e"]) > 1e-3 * metrics["rmse_e"]


def test_batches_padded_to_a_compiled_shape_give_the_same_metrics():
    validation, info = build_validation_set()
    force_field = pair_force_field(info)
    mesh = make_mesh(jax.devices()[:1])
    step = make_eval_step(force_field, MSELoss(extended_metrics=True), mesh)
    small, large = validation.batch_shapes
    own = evaluate(step, force_field.params, validation, mesh, 0)
    roomier = dataclasses.replace(
        small, n_node=small.n_node + 3, n_edge=small.n_edge + 9
    )
    compiled = {roomier, large}
    padded = evaluate(step, force_field.params, validation, mesh, 0, compiled)
    assert compiled == {roomier, large}  # nothing compiled anew
    assert padded == pytest.approx(own, rel=1e-6)
    # A compiled shape more than 1.5 times as large is not used: the step compiles.
    compiled = {large}
    evaluate(step, force_field.params, validation, mesh, 0, compiled)
    assert compiled == {small, large}


DEVICE_COUNTS = textwrap.dedent(
    """
    import json, os, sys
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = flags + " --xla_force_host_platform_device_count=4"
    sys.path.insert(0, os.getcwd())
    import jax
    from mlip_eqx.models.loss import MSELoss
    from mlip_eqx.training import evaluate, make_eval_step, make_mesh
    from tests.training.test_exact_metrics import (
        build_validation_set, pair_force_field)

    assert len(jax.devices()) == 4
    validation, info = build_validation_set()
    force_field = pair_force_field(info)
    loss = MSELoss(extended_metrics=True)
    table = {
        "num_batches": validation.num_batches(),
        "num_shapes": len(validation.batch_shapes),
    }
    for devices in (1, 2, 4):
        mesh = make_mesh(jax.devices()[:devices])
        step = make_eval_step(force_field, loss, mesh)
        table[devices] = evaluate(step, force_field.params, validation, mesh, 0)
    print(json.dumps(table))
    """
)


def test_validation_metrics_do_not_depend_on_the_device_count():
    output = run_script(DEVICE_COUNTS)
    table = json.loads(output.strip().splitlines()[-1])
    # 6 + 4 batches of two shapes: on 2 and 4 devices a shape's last group is
    # filled with padding-only batches.
    assert table["num_batches"] == 10 and table["num_shapes"] == 2
    one = table["1"]
    assert {"loss", "mae_f", "rmse_f", "q95_f", "mae_e_per_atom"} <= set(one)
    for devices in ("2", "4"):
        assert set(table[devices]) == set(one)
        for name, value in one.items():
            assert table[devices][name] == pytest.approx(value, rel=1e-5, abs=1e-9), (
                devices,
                name,
            )
