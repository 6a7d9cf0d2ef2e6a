"""Graphs of atoms: the Graph PyTree, neighbour lists and batching."""

from mlip_eqx.graph.batching import BatchTooLargeError, batch_graphs, stack_graphs
from mlip_eqx.graph.graph import Graph
from mlip_eqx.graph.neighbourhood import compute_neighbour_list

__all__ = [
    "BatchTooLargeError",
    "Graph",
    "batch_graphs",
    "compute_neighbour_list",
    "stack_graphs",
]
