"""ForceField: an MLIPNetwork turned into energies, forces and stress of graphs."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.graph.graph import Graph
from mlip_eqx.models.inference_context import InferenceContext
from mlip_eqx.models.mlip_network import MLIPNetwork
from mlip_eqx.models.prediction import Prediction
from mlip_eqx.utils.config import Config


class ForceField(eqx.Module):
    """Energies, forces and (optionally) stress of padded batches of graphs.

    ``force_field(graph)`` is pure and jit-compatible (``eqx.filter_jit``, or
    :func:`mlip_eqx.inference.make_predictor`); it casts positions and cells to the
    parameters' dtype; :meth:`energies` gives the energies alone and
    :meth:`node_energies` those of every atom. Forces are -dE/dx; the stress is
    (1/V) dE/dε for a symmetric strain ε applied to positions and cell (ASE's sign
    convention) and the pressure is -trace(stress)/3; with the stress come its
    two parts through the cell and through the atoms (``stress_cell``,
    ``stress_forces``, see :class:`Prediction`). Padding nodes and graphs get
    zeros.

    A multi-head network predicts each graph with the head and reference
    energies of the graph's ``dataset_idx``, or, with an ``inference_context``
    (see :meth:`replace_inference_context`), of that data set for every graph.

    Attributes:
        network: The energy model.
        predict_stress: Whether to compute stress and pressure.
        inference_context: The data set to predict every graph with (resolved
            against the DatasetInfo), or None: each graph's own.
    """

    network: MLIPNetwork
    predict_stress: bool = eqx.field(static=True, default=False)
    inference_context: InferenceContext | None = eqx.field(static=True, default=None)

    def __check_init__(self) -> None:
        if self.inference_context is not None:
            resolved = self.inference_context.resolve(self.dataset_info)
            if resolved != self.inference_context:
                raise ValueError(
                    "ForceField.inference_context must be resolved against the "
                    "DatasetInfo; use replace_inference_context()."
                )

    def replace_inference_context(
        self, inference_context: InferenceContext | None
    ) -> "ForceField":
        """This force field predicting every graph with the data set (readout
        head and E0) of ``inference_context``, e.g.
        ``InferenceContext(dataset_name="pbe")``; None: each graph's own.

        Raises:
            ValueError: The context names no data set of the model.
        """
        resolved = (
            None
            if inference_context is None
            else inference_context.resolve(self.dataset_info)
        )
        return dataclasses.replace(self, inference_context=resolved)

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

    def partition(self) -> tuple["ForceField", "ForceField"]:
        """(trainable arrays, the rest): two ForceField PyTrees with None in each
        other's places; ``eqx.combine(params, static)`` gives back the force field.

        The trainable arrays are the inexact (floating-point) arrays; pass them as
        arguments of jitted functions and close over the rest, so that compiled
        code does not hold the parameters as constants.
        """
        return eqx.partition(self, eqx.is_inexact_array)

    @property
    def params(self) -> "ForceField":
        """The trainable arrays (a ForceField PyTree with None elsewhere)."""
        params, _ = self.partition()
        return params

    def with_params(self, params: "ForceField") -> "ForceField":
        """This force field with its trainable arrays replaced by ``params``."""
        _, static = self.partition()
        return eqx.combine(params, static)

    @property
    def dtype(self) -> jnp.dtype:
        """Floating-point dtype of the parameters (and of the predictions)."""
        return jax.tree.leaves(self.params)[0].dtype

    def energies(self, graph: Graph) -> Float[Array, " n_graph"]:
        """Total energy of every graph in eV, without forces or stress.

        The same function of the positions as the energies of ``self(graph)``
        (e.g. for ``jax.grad`` or JAX-MD's ``positions -> energy``); padding graphs
        get zero.

        Args:
            graph: A padded batch (numpy or jax leaves).
        """
        return _sum_per_graph(graph, self.node_energies(graph))

    def node_energies(self, graph: Graph) -> Float[Array, " n_node"]:
        """Energy of every atom in eV (the network's per-node energies, E0
        included), without forces or stress.

        They sum, per graph, to :meth:`energies`; padding nodes get zero.

        Args:
            graph: A padded batch (numpy or jax leaves).
        """
        positions = jnp.asarray(graph.positions, self.dtype)
        cell = jnp.asarray(graph.cell, self.dtype)
        return _node_energies(self, graph, positions, strain=None, cell=cell)

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

        def total_energy(positions, strain, cell):
            node_energies = _node_energies(self, graph, positions, strain, cell)
            energies = _sum_per_graph(graph, node_energies)
            return jnp.sum(energies), energies

        if not self.predict_stress:
            gradient, energies = jax.grad(total_energy, has_aux=True)(
                positions, None, cell
            )
            return Prediction(energy=energies, forces=-gradient)
        # Zeros that vary like the cell: under shard_map, the gradient of a
        # device-invariant input (jnp.zeros) would come back summed over devices.
        strain = jnp.zeros_like(cell)
        (gradient, strain_gradient, cell_gradient), energies = jax.grad(
            total_energy, argnums=(0, 1, 2), has_aux=True
        )(positions, strain, cell)
        stress = _per_volume(strain_gradient, cell)
        pressure = -jnp.trace(stress, axis1=-2, axis2=-1) / 3.0
        cell_virial = jnp.einsum("gab,gac->gbc", cell_gradient, cell)
        atoms_virial = jax.ops.segment_sum(
            jnp.einsum("nb,nc->nbc", gradient, positions),
            graph.node_graph_index(),
            num_segments=graph.num_graphs,
        )
        return Prediction(
            energy=energies,
            forces=-gradient,
            stress=stress,
            pressure=pressure,
            stress_cell=_per_volume(cell_virial, cell),
            stress_forces=_per_volume(atoms_virial, cell),
        )


# Node energies are split into a multiple of this step (eV) and a remainder.
_COARSE_STEP = 2.0**-6


def _sum_per_graph(
    graph: Graph, node_energies: Float[Array, " n_node"]
) -> Float[Array, " n_graph"]:
    """The sum of the node energies of every graph (eV), with one rounding.

    Node energies carry their E0 (about -1,000 eV for a carbon atom in DFT), so a
    float32 running sum of a molecule's -9,000 eV rounds by up to half a meV at
    every atom (5 meV off for a 27-atom molecule). Each node energy is split
    exactly into a multiple of 2^-6 eV and a remainder below 2^-7 eV: the
    multiples add up without rounding (below 2^18 eV in float32), the remainders
    are small, and only their final sum rounds. The gradient is that of the
    plain sum.
    """
    coarse = jax.lax.stop_gradient(
        jnp.round(node_energies / _COARSE_STEP) * _COARSE_STEP
    )
    index, num_graphs = graph.node_graph_index(), graph.num_graphs
    exact_part = jax.ops.segment_sum(coarse, index, num_segments=num_graphs)
    remainder = jax.ops.segment_sum(
        node_energies - coarse, index, num_segments=num_graphs
    )
    return exact_part + remainder


def _node_energies(
    force_field: ForceField,
    graph: Graph,
    positions: Float[Array, "n_node 3"],
    strain: Float[Array, "n_graph 3 3"] | None,
    cell: Float[Array, "n_graph 3 3"],
) -> Float[Array, " n_node"]:
    """Energy of every node in eV at ``positions`` and ``cell`` (Å, in the
    parameters' dtype), deformed by ``strain`` unless it is None; zero for
    padding nodes."""
    vectors = graph.edge_vectors(positions=positions, cell=cell)
    if strain is not None:
        vectors = _apply_strain(vectors, strain, graph.edge_graph_index())
    node_dataset_idx = _node_dataset_idx(force_field, graph)
    # Passed only when needed, so that networks written for a single data set
    # need not take the argument.
    options = {} if node_dataset_idx is None else {"node_dataset_idx": node_dataset_idx}
    if type(force_field.network).takes_paired_edges:
        options["paired_edges"] = graph.paired_edges
    node_energies = force_field.network(
        vectors,
        jnp.asarray(graph.species),
        jnp.asarray(graph.senders),
        jnp.asarray(graph.receivers),
        **options,
    )
    return jnp.where(jnp.asarray(graph.node_mask), node_energies, 0.0)


def _node_dataset_idx(
    force_field: ForceField, graph: Graph
) -> Int[Array, " n_node"] | None:
    """The data set of every node: the inference context's, else its graph's;
    None for data set 0 everywhere (a model of a single data set)."""
    context = force_field.inference_context
    if context is not None:
        if context.dataset_idx == 0:
            return None
        return jnp.full(graph.num_nodes, context.dataset_idx, jnp.int32)
    if force_field.dataset_info.num_datasets == 1:
        return None
    return jnp.asarray(graph.dataset_idx)[graph.node_graph_index()]


def _apply_strain(
    vectors: Float[Array, "n_edge 3"],
    strain: Float[Array, "n_graph 3 3"],
    edge_graph: Int[Array, " n_edge"],
) -> Float[Array, "n_edge 3"]:
    """Edge vectors after the deformation x -> x (1 + sym(strain)) of their graph."""
    symmetric = 0.5 * (strain + jnp.swapaxes(strain, -1, -2))
    return vectors + jnp.einsum("ei,eij->ej", vectors, symmetric[edge_graph])


def _per_volume(
    virial: Float[Array, "n_graph 3 3"], cell: Float[Array, "n_graph 3 3"]
) -> Float[Array, "n_graph 3 3"]:
    """(1/V) times a virial (eV) of every graph, e.g. dE/dε: a stress in eV/Å³;
    zero for graphs without a cell (volume 0)."""
    volume = jnp.abs(jnp.linalg.det(cell))
    has_volume = volume > 0.0
    safe_volume = jnp.where(has_volume, volume, 1.0)
    return jnp.where(
        has_volume[:, None, None], virial / safe_volume[:, None, None], 0.0
    )
