"""Evaluation metrics of predictions against labelled graphs (masked, jit-safe)."""

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from mlip_eqx.graph.graph import Graph
from mlip_eqx.models.loss.reductions import Mean, Metric, Quantile, RootMean
from mlip_eqx.models.loss.terms import safe_divide
from mlip_eqx.models.prediction import Prediction


def _broadcast_mask(mask: Bool[Array, " n"], values: Array) -> Bool[Array, "n ..."]:
    return jnp.broadcast_to(
        mask.reshape(mask.shape + (1,) * (values.ndim - 1)), values.shape
    )


def _masked_sum(values: Float[Array, "n ..."], mask: Bool[Array, "n ..."]) -> Array:
    return jnp.sum(jnp.where(mask, values, 0.0))


def _error_metrics(
    name: str,
    errors: Array,
    references: Array,
    mask: Bool[Array, " n"],
    extended: bool,
) -> dict[str, Metric]:
    """MAE and RMSE (and relative variants and q95 if extended) of one quantity,
    as sums and counts over the real, labelled entries."""
    full_mask = _broadcast_mask(mask, errors)
    count = jnp.sum(full_mask).astype(errors.dtype)
    absolute_errors = jnp.abs(errors)
    absolute_error_sum = _masked_sum(absolute_errors, full_mask)
    squared_error_sum = _masked_sum(jnp.square(errors), full_mask)
    metrics = {
        f"mae_{name}": Mean(absolute_error_sum, count),
        f"rmse_{name}": RootMean(squared_error_sum, count),
    }
    if extended:
        metrics[f"rel_mae_{name}"] = Mean(
            absolute_error_sum, _masked_sum(jnp.abs(references), full_mask)
        )
        metrics[f"rel_rmse_{name}"] = RootMean(
            squared_error_sum, _masked_sum(jnp.square(references), full_mask)
        )
        metrics[f"q95_{name}"] = Quantile(absolute_errors, full_mask, 0.95)
    return metrics


def compute_eval_metrics(
    prediction: Prediction, ref_graph: Graph, extended_metrics: bool = False
) -> dict[str, Metric]:
    """Errors of the prediction on the real, labelled graphs and nodes of a batch.

    MAE and RMSE of energies in eV (``_e``), per atom in eV (``_e_per_atom``),
    forces in eV/Å (``_f``, over the components of real atoms of graphs with force
    labels) and stress in eV/Å³ (``_stress``, if predicted; over the structures
    with stress labels). The original library reports per-atom energies and
    stress only among its extended metrics.

    Args:
        prediction: The force field's output for ``ref_graph``.
        ref_graph: The labelled, padded batch.
        extended_metrics: Add relative MAE and RMSE and the 95th percentile of
            the absolute errors (q95) of each quantity.

    Returns:
        The metrics as sums and counts (see
        :mod:`mlip_eqx.models.loss.reductions`): MAE and relative MAE reduce as
        means, RMSE as root means, q95 as the 95th percentile of the absolute
        errors of every real entry of the set.
    """
    graph_mask = jnp.asarray(ref_graph.graph_mask)
    n_node = jnp.asarray(ref_graph.n_node).astype(prediction.energy.dtype)
    energy_mask = graph_mask & jnp.asarray(ref_graph.has_energy)
    energy_reference = jnp.asarray(ref_graph.energy, prediction.energy.dtype)
    energy_errors = prediction.energy - energy_reference
    metrics = _error_metrics(
        "e", energy_errors, energy_reference, energy_mask, extended_metrics
    )
    metrics |= _error_metrics(
        "e_per_atom",
        safe_divide(energy_errors, n_node),
        safe_divide(energy_reference, n_node),
        energy_mask,
        extended_metrics,
    )
    node_graph = ref_graph.node_graph_index()
    forces_mask = (
        jnp.asarray(ref_graph.node_mask) & jnp.asarray(ref_graph.has_forces)[node_graph]
    )
    forces_reference = jnp.asarray(ref_graph.forces, prediction.forces.dtype)
    metrics |= _error_metrics(
        "f",
        prediction.forces - forces_reference,
        forces_reference,
        forces_mask,
        extended_metrics,
    )
    if prediction.stress is not None:
        stress_mask = graph_mask & jnp.asarray(ref_graph.has_stress)
        stress_reference = jnp.asarray(ref_graph.stress, prediction.stress.dtype)
        metrics |= _error_metrics(
            "stress",
            prediction.stress - stress_reference,
            stress_reference,
            stress_mask,
            extended_metrics,
        )
    return metrics
