import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.data.graph_creation import graph_from_chemical_system, species_table
from mlip_eqx.graph import batch_graphs
from mlip_eqx.models.loss import HuberLoss, MSELoss
from mlip_eqx.models.prediction import Prediction

TABLE = species_table([1, 8])


def tiny_batch(n_node=8, n_edge=8, n_graph=4, forces_second=True, stress=True):
    """Two labelled structures (2 and 1 atoms) padded into one batch."""
    cell = np.eye(3) * 10.0
    first = ChemicalSystem(
        atomic_numbers=[1, 8],
        positions=[[0, 0, 0], [1, 0, 0]],
        energy=-2.0,
        forces=[[1.0, 0, 0], [-1.0, 0, 0]],
        stress=np.eye(3) * 0.1 if stress else None,
        cell=cell,
        pbc=[True] * 3,
        weight=2.0,
    )
    second = ChemicalSystem(
        atomic_numbers=[8],
        positions=[[5, 5, 5]],
        energy=-1.0,
        forces=[[0.0, 0.5, 0.0]] if forces_second else None,
        cell=cell,
        pbc=[True] * 3,
    )
    graphs = [graph_from_chemical_system(s, 1.5, TABLE) for s in (first, second)]
    return jax.tree.map(jnp.asarray, batch_graphs(graphs, n_node, n_edge, n_graph))


def prediction_for(batch, energy, forces, stress=None):
    n_node, n_graph = batch.num_nodes, batch.num_graphs
    full_forces = jnp.zeros((n_node, 3)).at[: len(forces)].set(jnp.asarray(forces))
    full_energy = jnp.zeros(n_graph).at[: len(energy)].set(jnp.asarray(energy))
    full_stress = None
    if stress is not None:
        full_stress = (
            jnp.zeros((n_graph, 3, 3)).at[: len(stress)].set(jnp.asarray(stress))
        )
    return Prediction(energy=full_energy, forces=full_forces, stress=full_stress)


def test_mse_matches_hand_computed_value():
    batch = tiny_batch()
    prediction = prediction_for(
        batch,
        energy=[-1.0, -1.5],
        forces=[[0.0, 0, 0], [-1.0, 0, 0], [0.0, 0.0, 0.0]],
        stress=[np.zeros((3, 3)), np.zeros((3, 3))],
    )
    loss = MSELoss(
        optax.constant_schedule(1.0),
        optax.constant_schedule(10.0),
        optax.constant_schedule(100.0),
    )
    value, metrics = loss(prediction, batch, epoch=0)
    # Energy per atom: graph 0 ((-2+1)/2)^2 = 0.25 weight 2; graph 1 (0.5)^2 = 0.25.
    energy = (2 * 0.25 + 1 * 0.25) / 2
    # Forces: graph 0 node errors 1/3 and 0 -> 1/6, weight 2; graph 1: 0.25/3.
    forces = (2 * (1 / 6) + 1 * (0.25 / 3)) / 2
    # Stress only on graph 0: mean of 3 * 0.01 over 9 = 1/300, weight 2, one graph.
    stress = 2 * (0.03 / 9)
    expected = energy + 10 * forces + 100 * stress
    assert float(value) == pytest.approx(expected, rel=1e-6)
    assert float(metrics["loss"]) == pytest.approx(expected, rel=1e-6)


def test_huber_matches_hand_computed_value():
    batch = tiny_batch(stress=False)
    prediction = prediction_for(
        batch, energy=[-2.0, -1.005], forces=[[1.0, 0, 0], [-0.9, 0, 0], [0, 0.5, 0]]
    )
    value, _ = HuberLoss()(prediction, batch, epoch=0)
    # Energy: graph 1 error 0.005 < delta: 0.5 * 0.005^2, averaged over 2 graphs.
    energy = 0.5 * 0.005**2 / 2
    # Forces: one component error 0.1 > delta 0.01: 0.01 * (0.1 - 0.005); mean over
    # 3 components and 2 atoms of graph 0 (weight 2), averaged over 2 graphs.
    forces = 2 * (0.01 * 0.095 / 3 / 2) / 2
    assert float(value) == pytest.approx(energy + 25 * forces, rel=1e-5)


def test_force_huber_delta_shrinks_for_large_reference_forces():
    from mlip_eqx.models.loss.terms import adaptive_huber_forces

    reference = jnp.array([[50.0, 0, 0], [150.0, 0, 0], [250.0, 0, 0], [350.0, 0, 0]])
    predicted = reference + jnp.array([1.0, 0.0, 0.0])
    deltas = 0.01 * np.array([1.0, 0.7, 0.4, 0.1])
    expected = deltas * (1.0 - 0.5 * deltas) / 3
    np.testing.assert_allclose(
        adaptive_huber_forces(predicted, reference), expected, rtol=1e-6
    )


def test_missing_labels_and_unpredicted_stress_contribute_nothing():
    batch = tiny_batch(forces_second=False)
    assert not bool(batch.has_forces[1])
    forces = jnp.full((3, 3), jnp.nan).at[:2].set(0.0)
    prediction = prediction_for(batch, energy=[-2.0, -1.0], forces=forces)
    loss = MSELoss()
    value, metrics = loss(prediction, batch, epoch=0, eval_metrics=True)
    # The NaN force of the unlabelled structure is masked out, not propagated.
    expected_forces = 25 * (2 * (1 / 3)) / 1  # only graph 0 carries forces
    assert float(value) == pytest.approx(expected_forces, rel=1e-6)
    assert all(bool(jnp.isfinite(v)) for v in metrics.values())
    gradient = jax.grad(
        lambda f: loss(prediction_for(batch, [-2.0, -1.0], f), batch, 0)[0]
    )(jnp.zeros((3, 3)))
    assert np.all(np.asarray(gradient[2]) == 0.0)


def test_padding_changes_nothing():
    small = tiny_batch(n_node=4, n_edge=4, n_graph=3)
    large = tiny_batch(n_node=20, n_edge=30, n_graph=9)
    forces = [[0.2, 0, 0], [-1.0, 0.3, 0], [0.0, 0.1, 0.0]]
    stress = [np.eye(3) * 0.05, np.zeros((3, 3))]
    loss = MSELoss(
        stress_weight_schedule=optax.constant_schedule(1.0), extended_metrics=True
    )
    value_small, metrics_small = loss(
        prediction_for(small, [-1.0, -1.5], forces, stress), small, 0, eval_metrics=True
    )
    value_large, metrics_large = loss(
        prediction_for(large, [-1.0, -1.5], forces, stress), large, 0, eval_metrics=True
    )
    assert float(value_small) == pytest.approx(float(value_large), rel=1e-6)
    assert metrics_small.keys() == metrics_large.keys()
    for key in metrics_small:
        assert float(metrics_small[key]) == pytest.approx(
            float(metrics_large[key]), rel=1e-5
        ), key


def test_eval_metrics_values():
    batch = tiny_batch()
    prediction = prediction_for(
        batch, energy=[-1.0, -1.5], forces=[[0.0, 0, 0], [-1.0, 0, 0], [0.0, 0.0, 0.0]]
    )
    _, metrics = MSELoss(extended_metrics=True)(prediction, batch, 0, eval_metrics=True)
    assert float(metrics["mae_e"]) == pytest.approx(0.75)
    assert float(metrics["rmse_e"]) == pytest.approx(np.sqrt((1 + 0.25) / 2))
    assert float(metrics["mae_e_per_atom"]) == pytest.approx((0.5 + 0.5) / 2)
    # Force components: errors 1 and 0.5 among 9 components.
    assert float(metrics["mae_f"]) == pytest.approx(1.5 / 9)
    assert float(metrics["rmse_f"]) == pytest.approx(np.sqrt(1.25 / 9))
    assert "mae_stress" not in metrics  # stress not predicted
    assert float(metrics["q95_f"]) == pytest.approx(
        np.percentile([1, 0.5] + [0] * 7, 95)
    )


def test_default_metrics_include_energy_per_atom_and_stress():
    batch = tiny_batch()
    stress = [np.eye(3) * 0.05, np.zeros((3, 3))]
    prediction = prediction_for(
        batch, [-1.0, -1.5], [[0.0, 0, 0], [-1.0, 0, 0], [0.0, 0.0, 0.0]], stress
    )
    _, metrics = MSELoss()(prediction, batch, 0, eval_metrics=True)
    assert float(metrics["mae_e_per_atom"]) == pytest.approx((0.5 + 0.5) / 2)
    assert {"rmse_e_per_atom", "mae_stress", "rmse_stress"} <= set(metrics)
    assert not any(k.startswith(("q95_", "rel_")) for k in metrics)


def test_schedules_work_under_jit_and_weights_are_reported():
    batch = tiny_batch()
    prediction = prediction_for(batch, energy=[-1.0, -1.5], forces=np.zeros((3, 3)))
    loss = MSELoss(
        optax.piecewise_constant_schedule(1.0, {100: 25.0}),
        optax.piecewise_constant_schedule(25.0, {100: 0.04}),
        extended_metrics=True,
    )
    jitted = jax.jit(lambda epoch: loss(prediction, batch, epoch))
    _, before = jitted(jnp.asarray(99))
    _, after = jitted(jnp.asarray(101))
    assert (
        float(before["energy_weight"]) == 1.0 and float(after["energy_weight"]) == 25.0
    )
    assert float(after["forces_weight"]) == pytest.approx(0.04 * 25.0)
    assert dataclasses.is_dataclass(loss)


def test_check_settings_names_a_bad_weight_and_its_epoch():
    MSELoss().check_settings(predicts_stress=False, num_epochs=5)
    falling = optax.linear_schedule(2.0, -2.0, transition_steps=4)
    with pytest.raises(ValueError, match="energy_weight is -1.0 at epoch 3"):
        MSELoss(energy_weight_schedule=falling).check_settings(False, num_epochs=5)
    # Beyond the epochs of training, the schedule does not matter.
    MSELoss(energy_weight_schedule=falling).check_settings(False, num_epochs=2)
    with pytest.raises(ValueError, match="forces_weight is nan"):
        HuberLoss(forces_weight_schedule=lambda epoch: jnp.nan).check_settings(True, 1)
    stress = optax.constant_schedule(1.0)
    with pytest.raises(ValueError, match="does not predict stress"):
        MSELoss(stress_weight_schedule=stress).check_settings(False, num_epochs=1)
    MSELoss(stress_weight_schedule=stress).check_settings(True, num_epochs=1)
