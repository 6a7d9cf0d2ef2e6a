"""Losses: abstract Loss, the weighted energy/forces/stress loss, MSE and Huber."""

import abc
from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

from mlip_eqx.graph.graph import Graph
from mlip_eqx.models.loss import terms
from mlip_eqx.models.loss.metrics import compute_eval_metrics
from mlip_eqx.models.prediction import Prediction

WeightSchedule = Callable[[Int[Array, ""] | int], Float[Array, ""] | float]


class Loss(eqx.Module):
    """A training objective: ``loss(prediction, ref_graph, epoch, eval_metrics)``."""

    @abc.abstractmethod
    def __call__(
        self,
        prediction: Prediction,
        ref_graph: Graph,
        epoch: Int[Array, ""] | int,
        eval_metrics: bool = False,
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        """The scalar loss and a dict of metrics (always with "loss").

        Args:
            prediction: The force field's output for ``ref_graph``.
            ref_graph: The labelled, padded batch.
            epoch: The epoch number (may be traced under jit).
            eval_metrics: Also compute evaluation metrics (MAE, RMSE, ...).
        """


class WeightedEFSLoss(Loss):
    """Weighted sum of per-graph energy, forces and stress errors.

    Each term is ``weight(epoch) * mean over graphs g of w_g * term_g``, where w_g is
    the structure's weight and the mean runs over the real graphs that carry the
    term's label. Labels that a structure lacks, and stress when the model does not
    predict it, contribute nothing (and no NaN). Weights are schedules: callables of
    the epoch such as optax schedules, evaluated inside jit.

    Attributes:
        energy_weight_schedule: Weight of the energy term (default constant 1).
        forces_weight_schedule: Weight of the forces term (default constant 25).
        stress_weight_schedule: Weight of the stress term (default constant 0).
        extended_metrics: Compute the extended evaluation metrics, and add the
            current loss weights to the training metrics.
    """

    energy_weight_schedule: WeightSchedule = eqx.field(
        static=True, default=optax.constant_schedule(1.0)
    )
    forces_weight_schedule: WeightSchedule = eqx.field(
        static=True, default=optax.constant_schedule(25.0)
    )
    stress_weight_schedule: WeightSchedule = eqx.field(
        static=True, default=optax.constant_schedule(0.0)
    )
    extended_metrics: bool = eqx.field(static=True, default=False)

    @abc.abstractmethod
    def energy_term(
        self,
        predicted: Float[Array, " n_graph"],
        reference: Float[Array, " n_graph"],
        n_node: Int[Array, " n_graph"],
    ) -> Float[Array, " n_graph"]:
        """Energy error per graph."""

    @abc.abstractmethod
    def forces_term(
        self, predicted: Float[Array, "n_node 3"], reference: Float[Array, "n_node 3"]
    ) -> Float[Array, " n_node"]:
        """Force error per node (averaged per graph by the caller)."""

    @abc.abstractmethod
    def stress_term(
        self,
        predicted: Float[Array, "n_graph 3 3"],
        reference: Float[Array, "n_graph 3 3"],
    ) -> Float[Array, " n_graph"]:
        """Stress error per graph."""

    def weights(self, epoch: Int[Array, ""] | int) -> dict[str, Array]:
        """The loss weights at ``epoch``."""
        return {
            "energy_weight": jnp.asarray(self.energy_weight_schedule(epoch)),
            "forces_weight": jnp.asarray(self.forces_weight_schedule(epoch)),
            "stress_weight": jnp.asarray(self.stress_weight_schedule(epoch)),
        }

    def __call__(
        self,
        prediction: Prediction,
        ref_graph: Graph,
        epoch: Int[Array, ""] | int,
        eval_metrics: bool = False,
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        dtype = prediction.energy.dtype
        graph_mask = jnp.asarray(ref_graph.graph_mask)
        graph_weight = jnp.asarray(ref_graph.weight, dtype)
        n_node = jnp.asarray(ref_graph.n_node)

        def weighted_mean(per_graph: Array, has_label: Array) -> Array:
            mask = graph_mask & jnp.asarray(has_label)
            total = jnp.sum(jnp.where(mask, graph_weight * per_graph, 0.0))
            return terms.safe_divide(total, jnp.sum(mask).astype(dtype))

        weights = self.weights(epoch)
        energy = self.energy_term(
            prediction.energy, jnp.asarray(ref_graph.energy, dtype), n_node
        )
        forces_per_node = self.forces_term(
            prediction.forces, jnp.asarray(ref_graph.forces, dtype)
        )
        forces_per_node = jnp.where(
            jnp.asarray(ref_graph.node_mask), forces_per_node, 0.0
        )
        forces = terms.per_graph_mean_over_nodes(
            forces_per_node, ref_graph.node_graph_index(), n_node
        )
        loss = weights["energy_weight"] * weighted_mean(energy, ref_graph.has_energy)
        loss = loss + weights["forces_weight"] * weighted_mean(
            forces, ref_graph.has_forces
        )
        if prediction.stress is not None:
            stress = self.stress_term(
                prediction.stress, jnp.asarray(ref_graph.stress, dtype)
            )
            loss = loss + weights["stress_weight"] * weighted_mean(
                stress, ref_graph.has_stress
            )
        metrics = {"loss": loss}
        if self.extended_metrics and not eval_metrics:
            metrics |= weights
        if eval_metrics:
            metrics |= compute_eval_metrics(
                prediction, ref_graph, self.extended_metrics
            )
        return loss, metrics


class MSELoss(WeightedEFSLoss):
    """Mean squared errors: energy per atom, forces per component averaged per
    graph, stress per component."""

    def energy_term(self, predicted, reference, n_node):
        return terms.squared_error_energy_per_atom(predicted, reference, n_node)

    def forces_term(self, predicted, reference):
        return terms.squared_error_forces(predicted, reference)

    def stress_term(self, predicted, reference):
        return terms.squared_error_stress(predicted, reference)


class HuberLoss(WeightedEFSLoss):
    """Huber losses: energy per atom and stress (delta 0.01), forces with a delta
    that shrinks for large reference forces."""

    def energy_term(self, predicted, reference, n_node):
        return terms.huber_energy_per_atom(predicted, reference, n_node)

    def forces_term(self, predicted, reference):
        return terms.adaptive_huber_forces(predicted, reference)

    def stress_term(self, predicted, reference):
        return terms.huber_stress(predicted, reference)
