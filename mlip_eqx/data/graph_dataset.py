"""GraphDataset: shuffled, packed, fixed-shape batches of graphs."""

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from mlip_eqx.data.prefetch import prefetch
from mlip_eqx.graph.batching import batch_graphs, stack_graphs
from mlip_eqx.graph.graph import Graph


class StructureTooLargeError(ValueError):
    """A structure has more atoms or edges than a batch can hold."""


@dataclasses.dataclass(frozen=True)
class PaddingEfficiency:
    """Fraction of the padded batch arrays that hold real data, over one epoch.

    Attributes:
        nodes: Real nodes / padded nodes.
        edges: Real edges / padded edges.
        graphs: Real graphs / padded graph slots.
        num_batches: Number of batches in the epoch.
    """

    nodes: float
    edges: float
    graphs: float
    num_batches: int


class GraphDataset:
    """A list of single-structure graphs served as padded batches of fixed shape.

    Every batch has exactly ``n_node = batch_size * max_n_node + 1`` nodes,
    ``n_edge = 2 * batch_size * max_n_edge`` edges and ``n_graph = batch_size + 1``
    graphs (the original library's convention: ``max_n_edge`` counts neighbour pairs),
    so one compiled step serves every batch. Structures are packed greedily in epoch
    order: a batch is closed when the next structure would not fit, so a batch holds
    at most ``batch_size`` structures. Every structure appears exactly once per epoch;
    the order depends only on ``(seed, epoch)``.

    Iterating the dataset directly (``for batch in dataset``) serves epoch 0, then
    epoch 1 on the next iteration, and so on; ``iter_batches(epoch)`` serves any
    epoch without changing that counter.
    """

    def __init__(
        self,
        graphs: Sequence[Graph],
        batch_size: int,
        max_n_node: int,
        max_n_edge: int,
        should_shuffle: bool = True,
        seed: int = 42,
        num_batch_prefetch: int = 1,
        sources: Sequence[str] | None = None,
    ):
        """Constructor.

        Args:
            graphs: Unpadded single-structure graphs with numpy leaves.
            batch_size: Maximum number of structures per batch.
            max_n_node: Average number of atoms per structure that a batch is sized
                for; the batch holds ``batch_size * max_n_node`` real atoms at most.
            max_n_edge: Average number of neighbour pairs per structure that a batch
                is sized for; the batch holds ``2 * batch_size * max_n_edge`` edges.
            should_shuffle: Whether to shuffle the structures every epoch.
            seed: Seed of the shuffling.
            num_batch_prefetch: Number of batches built ahead on a background thread
                (0: build them in the consuming thread).
            sources: Where each structure came from (for error messages).

        Raises:
            StructureTooLargeError: if a structure cannot fit into one batch.
        """
        for name, value in (
            ("batch_size", batch_size),
            ("max_n_node", max_n_node),
            ("max_n_edge", max_n_edge),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}.")
        if num_batch_prefetch < 0:
            raise ValueError(
                f"num_batch_prefetch must be >= 0, got {num_batch_prefetch}."
            )
        self._graphs = list(graphs)
        self.sources = (
            list(sources)
            if sources is not None
            else [f"structure {index}" for index in range(len(self._graphs))]
        )
        if len(self.sources) != len(self._graphs):
            raise ValueError("sources must have one entry per graph.")
        self.batch_size = batch_size
        self.max_n_node = max_n_node
        self.max_n_edge = max_n_edge
        self.should_shuffle = should_shuffle
        self.seed = seed
        self.num_batch_prefetch = num_batch_prefetch
        self.n_node = batch_size * max_n_node + 1
        self.n_edge = 2 * batch_size * max_n_edge
        self.n_graph = batch_size + 1
        self._nodes_per_graph = np.array(
            [int(g.n_node[0]) for g in self._graphs], dtype=np.int64
        )
        self._edges_per_graph = np.array(
            [int(g.n_edge[0]) for g in self._graphs], dtype=np.int64
        )
        self._check_sizes()
        self._next_epoch = 0

    def _check_sizes(self) -> None:
        node_limit, edge_limit = self.n_node - 1, self.n_edge
        too_large = np.flatnonzero(
            (self._nodes_per_graph > node_limit) | (self._edges_per_graph > edge_limit)
        )
        if too_large.size == 0:
            return
        first = too_large[0]
        fit_first = self._sizes_that_fit(too_large[:1])
        fit_all = self._sizes_that_fit(too_large)
        others = (
            ""
            if too_large.size == 1
            else f" {too_large.size} structures in all are too large; max_n_node >= "
            f"{fit_all[0]} and max_n_edge >= {fit_all[1]} would fit all of them."
        )
        raise StructureTooLargeError(
            f"{self.sources[first]}: {self._nodes_per_graph[first]} atoms and "
            f"{self._edges_per_graph[first]} edges do not fit a batch of at most "
            f"{node_limit} atoms (batch_size * max_n_node = {self.batch_size} * "
            f"{self.max_n_node}) and {edge_limit} edges (2 * batch_size * max_n_edge "
            f"= 2 * {self.batch_size} * {self.max_n_edge}); max_n_node >= "
            f"{fit_first[0]} and max_n_edge >= {fit_first[1]} would fit it.{others}"
        )

    def _sizes_that_fit(self, indices: np.ndarray) -> tuple[int, int]:
        """The smallest (max_n_node, max_n_edge), not below the current ones, with
        which every structure of ``indices`` fits a batch."""
        nodes = int(self._nodes_per_graph[indices].max())
        edges = int(self._edges_per_graph[indices].max())
        return (
            max(self.max_n_node, -(-nodes // self.batch_size)),
            max(self.max_n_edge, -(-edges // (2 * self.batch_size))),
        )

    @property
    def graphs(self) -> list[Graph]:
        """The unpadded single-structure graphs (in their stored order)."""
        return self._graphs

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Order of the structures in ``epoch``: a permutation from (seed, epoch)."""
        if not self.should_shuffle:
            return np.arange(len(self._graphs))
        rng = np.random.default_rng([self.seed, epoch])
        return rng.permutation(len(self._graphs))

    def batch_indices(self, epoch: int) -> list[np.ndarray]:
        """Indices of the structures of every batch of ``epoch``, in order."""
        batches, current = [], []
        nodes = edges = 0
        for index in self.epoch_order(epoch):
            graph_nodes = self._nodes_per_graph[index]
            graph_edges = self._edges_per_graph[index]
            if current and (
                len(current) == self.batch_size
                or nodes + graph_nodes > self.n_node - 1
                or edges + graph_edges > self.n_edge
            ):
                batches.append(np.array(current))
                current, nodes, edges = [], 0, 0
            current.append(index)
            nodes += graph_nodes
            edges += graph_edges
        if current:
            batches.append(np.array(current))
        return batches

    def num_batches(self, epoch: int = 0) -> int:
        """Number of batches in ``epoch`` (constant unless packing varies)."""
        return len(self.batch_indices(epoch))

    def __len__(self) -> int:
        """Number of batches of the epoch that the next ``iter()`` will serve."""
        return self.num_batches(self._next_epoch)

    def __iter__(self) -> Iterator[Graph]:
        epoch = self._next_epoch
        self._next_epoch += 1
        return self.iter_batches(epoch)

    def iter_batches(
        self, epoch: int = 0, num_devices: int | None = None
    ) -> Iterator[Graph]:
        """Padded batches of ``epoch``.

        Args:
            epoch: Epoch number; with shuffling, it selects the order.
            num_devices: If given, yield batches of ``num_devices`` padded batches
                stacked along a new leading axis (one per device, for shard_map). The
                last group is completed with batches that hold only padding.

        Returns:
            An iterator of Graphs with numpy leaves.
        """
        if num_devices is not None and num_devices < 1:
            raise ValueError(f"num_devices must be >= 1, got {num_devices}.")
        batches = self._generate_batches(self.batch_indices(epoch), num_devices)
        if self.num_batch_prefetch > 0:
            return prefetch(batches, self.num_batch_prefetch)
        return batches

    def _generate_batches(
        self, indices: list[np.ndarray], num_devices: int | None
    ) -> Iterator[Graph]:
        def make(batch: np.ndarray) -> Graph:
            return batch_graphs(
                [self._graphs[i] for i in batch], self.n_node, self.n_edge, self.n_graph
            )

        if num_devices is None:
            for batch in indices:
                yield make(batch)
            return
        for start in range(0, len(indices), num_devices):
            group = [make(batch) for batch in indices[start : start + num_devices]]
            group += [make(np.array([], dtype=np.int64))] * (num_devices - len(group))
            yield stack_graphs(group)

    def padding_efficiency(self, epoch: int = 0) -> PaddingEfficiency:
        """Real versus padded nodes, edges and graphs over the batches of ``epoch``.

        The padding node and padding graph that every batch needs count as waste.
        """
        batches = self.batch_indices(epoch)
        num_batches = len(batches)
        if num_batches == 0:
            return PaddingEfficiency(nodes=0.0, edges=0.0, graphs=0.0, num_batches=0)
        return PaddingEfficiency(
            nodes=float(self._nodes_per_graph.sum()) / (num_batches * self.n_node),
            edges=float(self._edges_per_graph.sum()) / (num_batches * self.n_edge),
            graphs=len(self._graphs) / (num_batches * self.n_graph),
            num_batches=num_batches,
        )

    def subset(self, indices: Sequence[int]) -> "GraphDataset":
        """A dataset of some of the structures, with the same batching settings."""
        indices = list(indices)
        return GraphDataset(
            [self._graphs[i] for i in indices],
            batch_size=self.batch_size,
            max_n_node=self.max_n_node,
            max_n_edge=self.max_n_edge,
            should_shuffle=self.should_shuffle,
            seed=self.seed,
            num_batch_prefetch=self.num_batch_prefetch,
            sources=[self.sources[i] for i in indices],
        )
