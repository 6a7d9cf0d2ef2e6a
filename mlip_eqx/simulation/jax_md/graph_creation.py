"""The Graph of the simulated structures from their Verlet list, inside jit: the
listed pairs within the cutoff, compacted into a fixed number of edges."""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from mlip_eqx.graph.graph import Graph
from mlip_eqx.simulation.jax_md.verlet_list import (
    SystemsLayout,
    VerletList,
    pairs_within,
)


def padded_cells(layout: SystemsLayout) -> np.ndarray:
    """The structures' cells and a zero one for the padding graph, [G + 1, 3, 3]."""
    return np.stack(list(layout.cells) + [np.zeros((3, 3))]).astype(np.float64)


def count_edges(
    positions: Float[Array, "n_atoms 3"], verlet: VerletList, layout: SystemsLayout
) -> Int[Array, ""]:
    """The number of listed pairs within the cutoff at ``positions``."""
    padded = jnp.concatenate([positions, jnp.zeros((1, 3), positions.dtype)])
    within = pairs_within(
        padded,
        verlet,
        jnp.asarray(padded_cells(layout), positions.dtype),
        jnp.asarray(layout.structure_of_atom),
        layout.cutoff,
    )
    return jnp.sum(within, dtype=jnp.int32)


def graph_from_verlet_list(
    positions: Float[Array, "n_atoms 3"], verlet: VerletList, layout: SystemsLayout
) -> Graph:
    """The padded batch of the structures, for ``ForceField.energies``.

    The graph has exactly the pairs within the cutoff, in both directions (the
    paired layout of :class:`~mlip_eqx.graph.graph.Graph`, so radial functions
    are computed once per pair), in ``2 * verlet.edge_capacity`` edges; pairs
    beyond that capacity are dropped, so callers check :func:`count_edges`.
    The edge vectors carry the gradient with respect to the positions.

    Args:
        positions: Positions in Å of all atoms, structures concatenated.
        verlet: Their Verlet list.
        layout: The structures' species, sizes, cells and the cutoff.

    Returns:
        A Graph of one graph per structure and a padding graph.
    """
    padding_node = layout.num_atoms
    padded = jnp.concatenate([positions, jnp.zeros((1, 3), positions.dtype)])
    cells = padded_cells(layout)
    structure_of_atom = jnp.asarray(layout.structure_of_atom)
    within = pairs_within(
        jax.lax.stop_gradient(padded),
        verlet,
        jnp.asarray(cells, positions.dtype),
        structure_of_atom,
        layout.cutoff,
    )
    # Pairs keep their order (that of the structures), then padding pairs.
    (chosen,) = jnp.nonzero(
        within, size=verlet.edge_capacity, fill_value=verlet.capacity
    )
    senders = verlet.senders[chosen]
    receivers = verlet.receivers[chosen]
    shifts = verlet.shifts[chosen]
    num_graphs = len(layout.sizes) + 1
    pairs_per_graph = jax.ops.segment_sum(
        within.astype(jnp.int32),
        structure_of_atom[verlet.receivers],
        num_segments=num_graphs,
    )
    real_pairs = jnp.sum(pairs_per_graph[:-1])
    padding_pairs = jnp.maximum(verlet.edge_capacity - real_pairs, 0).astype(
        jnp.int32
    )  # <0: overflow
    pairs_per_graph = pairs_per_graph.at[-1].set(padding_pairs)
    num_nodes = padding_node + 1
    edge_real = jnp.concatenate([receivers, senders]) != padding_node
    return Graph(
        positions=padded,
        species=np.concatenate([layout.species, [0]]).astype(np.int32),
        senders=jnp.concatenate([senders, receivers]),
        receivers=jnp.concatenate([receivers, senders]),
        shifts=jnp.concatenate([shifts, -shifts]),
        cell=cells,
        n_node=np.array(layout.sizes + (1,), dtype=np.int32),
        n_edge=2 * pairs_per_graph,
        energy=np.zeros(num_graphs),
        forces=np.zeros((num_nodes, 3)),
        stress=np.zeros((num_graphs, 3, 3)),
        weight=np.zeros(num_graphs),
        dataset_idx=np.zeros(num_graphs, np.int32),
        has_energy=np.zeros(num_graphs, bool),
        has_forces=np.zeros(num_graphs, bool),
        has_stress=np.zeros(num_graphs, bool),
        node_mask=np.arange(num_nodes) < padding_node,
        edge_mask=edge_real,
        graph_mask=np.arange(num_graphs) < num_graphs - 1,
        paired_edges=True,
    )
