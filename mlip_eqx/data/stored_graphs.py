"""StoredGraphs: the declared interface of graph collections that know every
structure's size without building its graph (e.g. graphs read from disk)."""

import abc
from collections.abc import Sequence

import numpy as np

from mlip_eqx.graph.graph import Graph


class StoredGraphs(Sequence[Graph], abc.ABC):
    """Graphs indexed like a list, whose sizes and sources are known up front.

    :class:`~mlip_eqx.data.graph_dataset.GraphDataset` plans its batches from
    these sizes and builds a structure's graph only when a batch needs it.
    """

    @property
    @abc.abstractmethod
    def num_nodes_per_graph(self) -> np.ndarray:
        """Atoms of every structure, [num_graphs]."""

    @property
    @abc.abstractmethod
    def num_edges_per_graph(self) -> np.ndarray:
        """Directed edges of every structure, [num_graphs]."""

    @property
    @abc.abstractmethod
    def sources(self) -> list[str]:
        """Where every structure came from (file and frame)."""
