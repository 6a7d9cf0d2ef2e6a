"""Losses: abstract Loss, the weighted energy/forces/stress loss, MSE and Huber."""

import abc
import dataclasses
import math
from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

from mlip_eqx.graph.graph import Graph
from mlip_eqx.models.loss import terms
from mlip_eqx.models.loss.metrics import compute_eval_metrics
from mlip_eqx.models.loss.reductions import Last, Mean, Metric, metric_values
from mlip_eqx.models.prediction import Prediction

WeightSchedule = Callable[[Int[Array, ""] | int], Float[Array, ""] | float]


class Loss(eqx.Module):
    """A training objective made of separately normalised terms.

    A loss is ``sum over terms t of S_t / C_t``: ``S_t`` is a (weighted) sum of
    errors (:meth:`term_sums`) and ``C_t`` the number of real items it averages
    over (:meth:`term_counts`, e.g. the real graphs with an energy label), which
    does not depend on the prediction. Steps add the sums and the counts of every
    batch on every device before dividing, so the loss and its gradient are those
    of the whole step's data: padding-only batches add nothing, and ``k`` batches
    on one device give the same update as on ``k`` devices.

    ``loss(prediction, ref_graph, epoch, eval_metrics)`` gives the loss of one
    batch and its metrics as arrays.
    """

    @abc.abstractmethod
    def term_counts(self, ref_graph: Graph) -> Float[Array, " n_terms"]:
        """The number of items each term averages over (real graphs or nodes that
        carry the term's label); independent of the prediction."""

    @abc.abstractmethod
    def term_sums(
        self, prediction: Prediction, ref_graph: Graph, epoch: Int[Array, ""] | int
    ) -> Float[Array, " n_terms"]:
        """The weighted error sum of each term, over the real, labelled items."""

    @abc.abstractmethod
    def additional_metrics(
        self,
        prediction: Prediction,
        ref_graph: Graph,
        epoch: Int[Array, ""] | int,
        eval_metrics: bool,
    ) -> dict[str, Metric]:
        """Metrics besides the loss (see :mod:`mlip_eqx.models.loss.reductions`)."""

    @abc.abstractmethod
    def check_settings(self, predicts_stress: bool, num_epochs: int) -> None:
        """Fails before training if the loss cannot be trained as set up.

        Args:
            predicts_stress: Whether the force field predicts stress.
            num_epochs: The epochs the loss will be used for (0 to num_epochs).

        Raises:
            ValueError: Naming the setting that is wrong.
        """

    def metrics(
        self,
        prediction: Prediction,
        ref_graph: Graph,
        epoch: Int[Array, ""] | int,
        eval_metrics: bool = False,
    ) -> dict[str, Metric]:
        """Every metric of a batch in reducible form; ``"loss"`` is
        ``Mean(term_sums, term_counts)``.

        Args:
            prediction: The force field's output for ``ref_graph``.
            ref_graph: The labelled, padded batch.
            epoch: The epoch number (may be traced under jit).
            eval_metrics: Also compute evaluation metrics (MAE, RMSE, ...).
        """
        loss = Mean(
            self.term_sums(prediction, ref_graph, epoch), self.term_counts(ref_graph)
        )
        return {"loss": loss} | self.additional_metrics(
            prediction, ref_graph, epoch, eval_metrics
        )

    def __call__(
        self,
        prediction: Prediction,
        ref_graph: Graph,
        epoch: Int[Array, ""] | int,
        eval_metrics: bool = False,
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        """The loss of one batch and its metrics (always with "loss") as arrays.

        Args:
            prediction: The force field's output for ``ref_graph``.
            ref_graph: The labelled, padded batch.
            epoch: The epoch number (may be traced under jit).
            eval_metrics: Also compute evaluation metrics (MAE, RMSE, ...).
        """
        values = metric_values(self.metrics(prediction, ref_graph, epoch, eval_metrics))
        return values["loss"], values


class WeightedEFSLoss(Loss):
    """Weighted sum of per-graph energy, forces and stress errors.

    Each term is ``weight(epoch) * mean over graphs g of w_g * term_g``, where w_g is
    the structure's weight and the mean runs over the real graphs that carry the
    term's label (over all batches of a step, see :class:`Loss`). Labels that a
    structure lacks, and stress when the model does not predict it, contribute
    nothing (and no NaN). Weights are schedules: callables of
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

    def with_weights(
        self, energy_weight: float, forces_weight: float
    ) -> "WeightedEFSLoss":
        """A copy with constant energy and forces weights, the rest unchanged
        (e.g. the loss of a second training stage)."""
        return dataclasses.replace(
            self,
            energy_weight_schedule=optax.constant_schedule(energy_weight),
            forces_weight_schedule=optax.constant_schedule(forces_weight),
        )

    def weights(self, epoch: Int[Array, ""] | int) -> dict[str, Array]:
        """The loss weights at ``epoch``."""
        return {
            "energy_weight": jnp.asarray(self.energy_weight_schedule(epoch)),
            "forces_weight": jnp.asarray(self.forces_weight_schedule(epoch)),
            "stress_weight": jnp.asarray(self.stress_weight_schedule(epoch)),
        }

    def term_counts(self, ref_graph: Graph) -> Float[Array, " 3"]:
        """Real graphs with an energy, forces and stress label."""
        graph_mask = jnp.asarray(ref_graph.graph_mask)
        labels = (ref_graph.has_energy, ref_graph.has_forces, ref_graph.has_stress)
        return jnp.stack(
            [jnp.sum(graph_mask & jnp.asarray(has)) for has in labels]
        ).astype(jnp.asarray(ref_graph.positions).dtype)

    def term_sums(
        self, prediction: Prediction, ref_graph: Graph, epoch: Int[Array, ""] | int
    ) -> Float[Array, " 3"]:
        """Weighted sums over the labelled graphs of the energy, forces and stress
        terms (stress 0 when the model does not predict it)."""
        dtype = prediction.energy.dtype
        graph_mask = jnp.asarray(ref_graph.graph_mask)
        graph_weight = jnp.asarray(ref_graph.weight, dtype)
        n_node = jnp.asarray(ref_graph.n_node)

        def weighted_sum(per_graph: Array, has_label: Array) -> Array:
            mask = graph_mask & jnp.asarray(has_label)
            return jnp.sum(jnp.where(mask, graph_weight * per_graph, 0.0))

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
        sums = [
            weights["energy_weight"] * weighted_sum(energy, ref_graph.has_energy),
            weights["forces_weight"] * weighted_sum(forces, ref_graph.has_forces),
        ]
        if prediction.stress is None:
            sums.append(jnp.zeros((), dtype))
        else:
            stress = self.stress_term(
                prediction.stress, jnp.asarray(ref_graph.stress, dtype)
            )
            sums.append(
                weights["stress_weight"] * weighted_sum(stress, ref_graph.has_stress)
            )
        return jnp.stack(sums).astype(dtype)

    def check_settings(self, predicts_stress: bool, num_epochs: int) -> None:
        """Every weight must be finite and >= 0 at every epoch, and a positive
        stress weight needs a force field that predicts stress.

        Raises:
            ValueError: Naming the weight, the epoch and the value.
        """
        for epoch in range(num_epochs + 1):
            for name, value in self.weights(epoch).items():
                value = float(value)
                if not math.isfinite(value) or value < 0:
                    raise ValueError(
                        f"{type(self).__name__}: {name} is {value} at epoch {epoch}; "
                        "loss weights must be finite and >= 0."
                    )
                if name == "stress_weight" and value > 0 and not predicts_stress:
                    raise ValueError(
                        f"{type(self).__name__}: stress_weight is {value} at epoch "
                        f"{epoch}, but the force field does not predict stress; "
                        "build it with predict_stress=True or set the stress "
                        "weight to 0."
                    )

    def additional_metrics(
        self,
        prediction: Prediction,
        ref_graph: Graph,
        epoch: Int[Array, ""] | int,
        eval_metrics: bool,
    ) -> dict[str, Metric]:
        """Evaluation metrics (see :func:`compute_eval_metrics`) if asked; with
        ``extended_metrics``, the loss weights of the epoch in training."""
        if eval_metrics:
            return compute_eval_metrics(prediction, ref_graph, self.extended_metrics)
        if self.extended_metrics:
            return {name: Last(value) for name, value in self.weights(epoch).items()}
        return {}


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
