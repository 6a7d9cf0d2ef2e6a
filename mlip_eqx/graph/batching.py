"""Concatenating single-structure graphs into one padded, fixed-shape batch."""

from collections.abc import Sequence

import jax
import numpy as np

from mlip_eqx.graph.graph import Graph


class BatchTooLargeError(ValueError):
    """The graphs do not fit into the requested padded sizes."""


def batch_graphs(
    graphs: Sequence[Graph], n_node: int, n_edge: int, n_graph: int
) -> Graph:
    """Concatenates graphs and pads them to exactly (n_node, n_edge, n_graph).

    Padding comes last: at least one padding node and one padding graph are always
    present, and all padding nodes and edges belong to the last graph. If every graph
    has paired edges (see :class:`Graph`), so has the batch: the first halves of all
    graphs' edges, then half of the padding edges, then the second halves in the same
    order, then the other half of the padding edges.

    Args:
        graphs: Unpadded graphs with numpy leaves, in batch order.
        n_node: Total number of nodes of the batch, > total real nodes.
        n_edge: Total number of edges of the batch, >= total real edges.
        n_graph: Total number of graphs of the batch, > number of graphs.

    Returns:
        The padded batch, numpy leaves.
    """
    real = list(graphs)
    total_nodes = sum(int(g.n_node.sum()) for g in real)
    total_edges = sum(int(g.n_edge.sum()) for g in real)
    total_graphs = sum(len(g.n_node) for g in real)
    if total_nodes >= n_node or total_edges > n_edge or total_graphs >= n_graph:
        raise BatchTooLargeError(
            f"{total_graphs} graphs with {total_nodes} nodes and {total_edges} edges "
            f"do not fit a batch of n_node={n_node} (one is kept for padding), "
            f"n_edge={n_edge}, n_graph={n_graph} (one is kept for padding)."
        )
    node_offsets = np.cumsum([0] + [int(g.n_node.sum()) for g in real])[:-1]
    pad_nodes = n_node - total_nodes
    pad_edges = n_edge - total_edges
    pad_graphs = n_graph - total_graphs
    padding_node = n_node - 1

    def cat(name: str, pad_shape: tuple[int, ...], fill=0, dtype=None) -> np.ndarray:
        parts = [np.asarray(getattr(g, name)) for g in real]
        dtype = dtype or (parts[0].dtype if parts else np.float64)
        parts.append(np.full(pad_shape, fill, dtype=dtype))
        return np.concatenate(parts, axis=0).astype(dtype, copy=False)

    paired = all(g.paired_edges for g in real) and pad_edges % 2 == 0

    def cat_edges(parts: list[np.ndarray], padding: np.ndarray) -> np.ndarray:
        if not paired:
            return np.concatenate(parts + [padding], axis=0)
        halves = [np.split(part, 2, axis=0) for part in parts]
        pad_first, pad_second = np.split(padding, 2, axis=0)
        return np.concatenate(
            [h[0] for h in halves]
            + [pad_first]
            + [h[1] for h in halves]
            + [pad_second],
            axis=0,
        )

    def edge_field(name: str, pad_shape: tuple[int, ...], fill, dtype) -> np.ndarray:
        parts = [np.asarray(getattr(g, name)).astype(dtype) for g in real]
        return cat_edges(parts, np.full(pad_shape, fill, dtype=dtype))

    padding_edges = np.full(pad_edges, padding_node, dtype=np.int32)
    senders = cat_edges(
        [np.asarray(g.senders) + off for g, off in zip(real, node_offsets)],
        padding_edges,
    )
    receivers = cat_edges(
        [np.asarray(g.receivers) + off for g, off in zip(real, node_offsets)],
        padding_edges,
    )
    # The last graph owns every padding node and edge; any others stay empty.
    pad_n_node = np.zeros(pad_graphs, dtype=np.int32)
    pad_n_node[-1] = pad_nodes
    pad_n_edge = np.zeros(pad_graphs, dtype=np.int32)
    pad_n_edge[-1] = pad_edges
    n_node_all = np.concatenate([np.asarray(g.n_node) for g in real] + [pad_n_node])
    n_edge_all = np.concatenate([np.asarray(g.n_edge) for g in real] + [pad_n_edge])
    return Graph(
        positions=cat("positions", (pad_nodes, 3), dtype=np.float64),
        species=cat("species", (pad_nodes,), dtype=np.int32),
        senders=senders.astype(np.int32),
        receivers=receivers.astype(np.int32),
        shifts=edge_field("shifts", (pad_edges, 3), 0, np.int32),
        cell=cat("cell", (pad_graphs, 3, 3), dtype=np.float64),
        n_node=n_node_all.astype(np.int32),
        n_edge=n_edge_all.astype(np.int32),
        energy=cat("energy", (pad_graphs,), dtype=np.float64),
        forces=cat("forces", (pad_nodes, 3), dtype=np.float64),
        stress=cat("stress", (pad_graphs, 3, 3), dtype=np.float64),
        weight=cat("weight", (pad_graphs,), dtype=np.float64),
        dataset_idx=cat("dataset_idx", (pad_graphs,), dtype=np.int32),
        has_energy=cat("has_energy", (pad_graphs,), False, dtype=bool),
        has_forces=cat("has_forces", (pad_graphs,), False, dtype=bool),
        has_stress=cat("has_stress", (pad_graphs,), False, dtype=bool),
        node_mask=cat("node_mask", (pad_nodes,), False, dtype=bool),
        edge_mask=edge_field("edge_mask", (pad_edges,), False, bool),
        graph_mask=cat("graph_mask", (pad_graphs,), False, dtype=bool),
        paired_edges=paired,
    )


def stack_graphs(graphs: Sequence[Graph]) -> Graph:
    """Stacks equally-shaped batches along a new leading (device) axis."""
    return jax.tree.map(lambda *leaves: np.stack(leaves), *graphs)
