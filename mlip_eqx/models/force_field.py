"""ForceField: an MLIPNetwork turned into energies, forces and stress of graphs."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.graph.graph import Graph
from mlip_eqx.models.mlip_network import MLIPNetwork
from mlip_eqx.models.prediction import Prediction
from mlip_eqx.utils.config import Config


class ForceField(eqx.Module):
    """Energies, forces and (optionally) stress of padded batches of graphs.

    ``force_field(graph)`` is pure and jit-compatible (``eqx.filter_jit``); it casts
    positions and cells to the parameters' dtype. Forces are -dE/dx; the stress is
    (1/V) dE/dε for a symmetric strain ε applied to positions and cell (ASE's sign
    convention) and the pressure is -trace(stress)/3. Padding nodes and graphs get
    zeros.

    Attributes:
        network: The energy model.
        predict_stress: Whether to compute stress and pressure.
    """

    network: MLIPNetwork
    predict_stress: bool = eqx.field(static=True, default=False)

    @classmethod
    def from_mlip_network(
        cls, network: MLIPNetwork, predict_stress: bool = False, seed: int = 42
    ) -> "ForceField":
        """A force field with the network's architecture and fresh parameters.

        Args:
            network: Gives the architecture (its type, config and dataset info); its
                current parameters are not used.
            predict_stress: Whether to compute stress and pressure.
            seed: Seed of the initial parameters.

        Returns:
            The force field with parameters drawn from ``jax.random.key(seed)``.
        """
        fresh = type(network)(
            network.config, network.dataset_info, key=jax.random.key(seed)
        )
        return cls(fresh, predict_stress)

    @property
    def config(self) -> Config:
        """The network's hyperparameters."""
        return self.network.config

    @property
    def dataset_info(self) -> DatasetInfo:
        """The statistics of the training set the network was built for."""
        return self.network.dataset_info

    @property
    def cutoff_distance(self) -> float:
        """The graph cutoff in Å."""
        return self.dataset_info.cutoff_distance_angstrom

    @property
    def allowed_atomic_numbers(self) -> list[int]:
        """Atomic numbers of the elements the model knows, sorted (species order)."""
        return self.dataset_info.allowed_atomic_numbers

    @property
    def params(self) -> "ForceField":
        """The trainable arrays (a ForceField PyTree with None elsewhere)."""
        return eqx.filter(self, eqx.is_inexact_array)

    def with_params(self, params: "ForceField") -> "ForceField":
        """This force field with its trainable arrays replaced by ``params``."""
        return eqx.combine(params, eqx.filter(self, eqx.is_inexact_array, inverse=True))

    @property
    def dtype(self) -> jnp.dtype:
        """Floating-point dtype of the parameters (and of the predictions)."""
        return jax.tree.leaves(self.params)[0].dtype

    def __call__(self, graph: Graph) -> Prediction:
        """Predicts energy, forces and, if asked, stress of every graph.

        Args:
            graph: A padded batch (numpy or jax leaves).

        Returns:
            The Prediction; stress and pressure are None unless ``predict_stress``.
        """
        dtype = self.dtype
        positions = jnp.asarray(graph.positions, dtype)
        cell = jnp.asarray(graph.cell, dtype)
        strain = jnp.zeros(cell.shape, dtype)
        species = jnp.asarray(graph.species)
        senders = jnp.asarray(graph.senders)
        receivers = jnp.asarray(graph.receivers)
        node_graph = graph.node_graph_index()
        edge_graph = graph.edge_graph_index()
        node_mask = jnp.asarray(graph.node_mask)

        paired = {}
        if graph.paired_edges and self.network.supports_paired_edges:
            paired["paired_edges"] = True

        def total_energy(positions, strain):
            vectors = graph.edge_vectors(positions=positions, cell=cell)
            if self.predict_stress:  # static: no strain work when not needed
                vectors = _apply_strain(vectors, strain, edge_graph)
            node_energies = self.network(vectors, species, senders, receivers, **paired)
            node_energies = jnp.where(node_mask, node_energies, 0.0)
            energies = jax.ops.segment_sum(
                node_energies, node_graph, num_segments=graph.num_graphs
            )
            return jnp.sum(energies), energies

        if not self.predict_stress:
            gradient, energies = jax.grad(total_energy, has_aux=True)(positions, strain)
            return Prediction(energy=energies, forces=-gradient)
        (gradient, strain_gradient), energies = jax.grad(
            total_energy, argnums=(0, 1), has_aux=True
        )(positions, strain)
        stress = _stress_from_strain_gradient(strain_gradient, cell)
        pressure = -jnp.trace(stress, axis1=-2, axis2=-1) / 3.0
        return Prediction(
            energy=energies, forces=-gradient, stress=stress, pressure=pressure
        )


def _apply_strain(
    vectors: Float[Array, "n_edge 3"],
    strain: Float[Array, "n_graph 3 3"],
    edge_graph: Int[Array, " n_edge"],
) -> Float[Array, "n_edge 3"]:
    """Edge vectors after the deformation x -> x (1 + sym(strain)) of their graph."""
    symmetric = 0.5 * (strain + jnp.swapaxes(strain, -1, -2))
    return vectors + jnp.einsum("ei,eij->ej", vectors, symmetric[edge_graph])


def _stress_from_strain_gradient(
    strain_gradient: Float[Array, "n_graph 3 3"], cell: Float[Array, "n_graph 3 3"]
) -> Float[Array, "n_graph 3 3"]:
    """(1/V) dE/dε, zero for graphs without a cell (volume 0)."""
    volume = jnp.abs(jnp.linalg.det(cell))
    has_volume = volume > 0.0
    safe_volume = jnp.where(has_volume, volume, 1.0)
    return jnp.where(
        has_volume[:, None, None], strain_gradient / safe_volume[:, None, None], 0.0
    )
