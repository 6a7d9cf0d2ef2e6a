"""GraphDataset: shuffled, size-bucketed, padded batches of graphs."""

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from mlip_eqx.data.batch_shapes import BatchShape, SizeBucket, plan_buckets
from mlip_eqx.data.prefetch import prefetch
from mlip_eqx.data.stored_graphs import StoredGraphs
from mlip_eqx.graph.batching import batch_graphs, stack_graphs
from mlip_eqx.graph.graph import Graph

# The structure indices of a batch that holds only padding.
NO_STRUCTURES = np.array([], dtype=np.int64)


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
        shape: The batch shape these numbers are for (None: all shapes).
        per_shape: The same numbers for each shape (of the whole data set only).
    """

    nodes: float
    edges: float
    graphs: float
    num_batches: int
    shape: BatchShape | None = None
    per_shape: tuple["PaddingEfficiency", ...] = ()


class GraphDataset:
    """A list of single-structure graphs served as padded batches of a few shapes.

    The structures are grouped by size into at most ``max_batch_shapes`` buckets,
    each batched in one padded shape, so that the jitted steps compile once per
    shape and little of each batch is padding (see :mod:`mlip_eqx.data.batch_shapes`:
    within a bucket, every batch takes one structure of each size stratum). The
    number of batches per epoch is fixed: it depends only on the sizes and the
    settings, not on the shuffling. Every structure appears exactly once per epoch;
    the order depends only on ``(seed, epoch)``. A batch holds at most
    ``batch_size`` structures and, when ``max_n_node`` / ``max_n_edge`` are given, at
    most ``batch_size * max_n_node`` atoms and ``2 * batch_size * max_n_edge`` edges
    (the original library's convention: ``max_n_edge`` counts neighbour pairs).

    Iterating the dataset directly (``for batch in dataset``) serves epoch 0, then
    epoch 1 on the next iteration, and so on; ``iter_batches(epoch)`` serves any
    epoch without changing that counter.
    """

    def __init__(
        self,
        graphs: Sequence[Graph],
        batch_size: int,
        max_n_node: int | None = None,
        max_n_edge: int | None = None,
        should_shuffle: bool = True,
        seed: int = 42,
        num_batch_prefetch: int = 1,
        sources: Sequence[str] | None = None,
        max_batch_shapes: int = 6,
        target_padding_efficiency: float = 0.9,
    ):
        """Constructor.

        Args:
            graphs: Unpadded single-structure graphs with numpy leaves: a list,
                or :class:`~mlip_eqx.data.stored_graphs.StoredGraphs` (e.g.
                :class:`~mlip_eqx.data.graph_shards.ShardedGraphs`), whose
                sizes and sources are known up front and whose graphs are then
                read only when a batch needs them.
            batch_size: Maximum number of structures per batch.
            max_n_node: If given, a batch holds at most ``batch_size * max_n_node``
                real atoms (a memory limit); None: no limit.
            max_n_edge: If given, a batch holds at most ``2 * batch_size *
                max_n_edge`` real edges; None: no limit.
            should_shuffle: Whether to shuffle the structures every epoch.
            seed: Seed of the shuffling.
            num_batch_prefetch: Number of batches built ahead on a background thread
                (0: build them in the consuming thread).
            sources: Where each structure came from (for error messages).
            max_batch_shapes: Largest number of padded shapes (1: one shape for all).
            target_padding_efficiency: The fewest shapes whose node and edge padding
                efficiencies both reach this are used (at most ``max_batch_shapes``).

        Raises:
            StructureTooLargeError: if a structure cannot fit into one batch.
        """
        for name, value in (
            ("batch_size", batch_size),
            ("max_n_node", max_n_node),
            ("max_n_edge", max_n_edge),
            ("max_batch_shapes", max_batch_shapes),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}.")
        if num_batch_prefetch < 0:
            raise ValueError(
                f"num_batch_prefetch must be >= 0, got {num_batch_prefetch}."
            )
        if not 0 <= target_padding_efficiency <= 1:
            raise ValueError(
                "target_padding_efficiency must be in [0, 1], got "
                f"{target_padding_efficiency}."
            )
        is_lazy = isinstance(graphs, StoredGraphs)
        self._graphs = graphs if is_lazy else list(graphs)
        if sources is None and is_lazy:
            sources = graphs.sources
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
        self.max_batch_shapes = max_batch_shapes
        self.target_padding_efficiency = target_padding_efficiency
        if is_lazy:
            self._nodes_per_graph = np.asarray(graphs.num_nodes_per_graph, np.int64)
            self._edges_per_graph = np.asarray(graphs.num_edges_per_graph, np.int64)
        else:
            self._nodes_per_graph = np.array(
                [int(g.n_node[0]) for g in self._graphs], dtype=np.int64
            )
            self._edges_per_graph = np.array(
                [int(g.n_edge[0]) for g in self._graphs], dtype=np.int64
            )
        self._check_sizes()
        self._buckets = plan_buckets(
            self._nodes_per_graph,
            self._edges_per_graph,
            batch_size,
            max_batch_shapes,
            target_padding_efficiency,
            node_capacity=self._node_capacity,
            edge_capacity=self._edge_capacity,
        )
        self._next_epoch = 0

    @property
    def _node_capacity(self) -> int | None:
        return None if self.max_n_node is None else self.batch_size * self.max_n_node

    @property
    def _edge_capacity(self) -> int | None:
        if self.max_n_edge is None:
            return None
        return 2 * self.batch_size * self.max_n_edge

    def _check_sizes(self) -> None:
        node_limit, edge_limit = self._node_capacity, self._edge_capacity
        too_large = np.flatnonzero(
            (node_limit is not None and self._nodes_per_graph > node_limit)
            | (edge_limit is not None and self._edges_per_graph > edge_limit)
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
        nodes_text = (
            "any number of atoms"
            if node_limit is None
            else f"at most {node_limit} atoms (batch_size * max_n_node = "
            f"{self.batch_size} * {self.max_n_node})"
        )
        edges_text = (
            "any number of edges"
            if edge_limit is None
            else f"at most {edge_limit} edges (2 * batch_size * max_n_edge = 2 * "
            f"{self.batch_size} * {self.max_n_edge})"
        )
        raise StructureTooLargeError(
            f"{self.sources[first]}: {self._nodes_per_graph[first]} atoms and "
            f"{self._edges_per_graph[first]} edges do not fit a batch of "
            f"{nodes_text} and {edges_text}; max_n_node >= {fit_first[0]} and "
            f"max_n_edge >= {fit_first[1]} would fit it.{others}"
        )

    def _sizes_that_fit(self, indices: np.ndarray) -> tuple[int, int]:
        """The smallest (max_n_node, max_n_edge), not below the current ones, with
        which every structure of ``indices`` fits a batch."""
        nodes = int(self._nodes_per_graph[indices].max())
        edges = int(self._edges_per_graph[indices].max())
        return (
            max(self.max_n_node or 1, -(-nodes // self.batch_size)),
            max(self.max_n_edge or 1, -(-edges // (2 * self.batch_size))),
        )

    @property
    def graphs(self) -> Sequence[Graph]:
        """The unpadded single-structure graphs (in their stored order): a list,
        or the lazy sequence the dataset was built from."""
        return self._graphs

    @property
    def batch_shapes(self) -> tuple[BatchShape, ...]:
        """The distinct padded shapes of the batches, smallest first."""
        return tuple(sorted({bucket.shape for bucket in self._buckets}))

    def steps(
        self, epoch: int = 0, num_devices: int = 1
    ) -> list[tuple[BatchShape, list[np.ndarray]]]:
        """The batches of ``epoch`` grouped into steps of ``num_devices`` batches.

        The batches of a step share one shape; the last step of a shape may have
        fewer than ``num_devices`` batches. With shuffling, the order of the steps
        and the batches' structures are drawn from ``(seed, epoch)``.

        Returns:
            For every step in order, its shape and the structure indices of each
            of its batches.
        """
        if num_devices < 1:
            raise ValueError(f"num_devices must be >= 1, got {num_devices}.")
        rng = np.random.default_rng([self.seed, epoch]) if self.should_shuffle else None
        by_shape: dict[BatchShape, list[np.ndarray]] = {}
        for bucket in self._buckets:
            by_shape.setdefault(bucket.shape, []).extend(bucket.batches(rng))
        steps = [
            (shape, batches[start : start + num_devices])
            for shape, batches in by_shape.items()
            for start in range(0, len(batches), num_devices)
        ]
        if rng is None:
            return steps
        return [steps[i] for i in rng.permutation(len(steps))]

    def batch_indices(self, epoch: int) -> list[np.ndarray]:
        """Indices of the structures of every batch of ``epoch``, in order."""
        return [batch for _, batches in self.steps(epoch) for batch in batches]

    def num_batches(self, epoch: int = 0) -> int:
        """Number of batches per epoch (the same for every epoch)."""
        del epoch  # fixed by the sizes and settings
        return sum(bucket.num_batches for bucket in self._buckets)

    def num_steps(self, num_devices: int = 1) -> int:
        """Number of steps per epoch with ``num_devices`` batches per step."""
        per_shape: dict[BatchShape, int] = {}
        for bucket in self._buckets:
            per_shape[bucket.shape] = (
                per_shape.get(bucket.shape, 0) + bucket.num_batches
            )
        return sum(-(-count // num_devices) for count in per_shape.values())

    def __len__(self) -> int:
        """Number of batches per epoch."""
        return self.num_batches()

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
                of one shape stacked along a new leading axis (one per device, for
                shard_map). The last group of a shape is completed with batches
                that hold only padding.

        Returns:
            An iterator of Graphs with numpy leaves.
        """
        steps = self.steps(epoch, num_devices or 1)
        batches = self._generate_batches(steps, num_devices)
        if self.num_batch_prefetch > 0:
            return prefetch(batches, self.num_batch_prefetch)
        return batches

    def _generate_batches(
        self,
        steps: list[tuple[BatchShape, list[np.ndarray]]],
        num_devices: int | None,
    ) -> Iterator[Graph]:
        for shape, batches in steps:
            if num_devices is None:
                yield self.make_batch(shape, batches[0])
                continue
            yield self.make_stacked_batches(shape, batches, num_devices)

    def make_stacked_batches(
        self, shape: BatchShape, batches: Sequence[np.ndarray], size: int
    ) -> Graph:
        """``size`` padded batches of shape ``shape`` stacked along a new leading
        axis: those of ``batches`` (structure indices, as in :meth:`steps`),
        then batches of padding only."""
        group = [self.make_batch(shape, batch) for batch in batches]
        group += [self.make_batch(shape, NO_STRUCTURES)] * (size - len(group))
        return stack_graphs(group)

    def make_batch(
        self, shape: BatchShape, indices: np.ndarray | Sequence[int]
    ) -> Graph:
        """The padded batch of shape ``shape`` holding the structures ``indices``
        (a step's entry of :meth:`steps`; none: a batch of padding only).

        Only these structures are read from a lazy sequence of graphs.
        """
        return batch_graphs(
            [self._graphs[i] for i in indices],
            shape.n_node,
            shape.n_edge,
            shape.n_graph,
        )

    @property
    def num_nodes_per_graph(self) -> np.ndarray:
        """The number of atoms of every structure, in stored order."""
        return self._nodes_per_graph

    def padding_efficiency(self, epoch: int = 0) -> PaddingEfficiency:
        """Real versus padded nodes, edges and graphs over one epoch, in all and
        per shape (the same for every epoch).

        The padding node and padding graph that every batch needs count as waste.
        """
        del epoch  # fixed by the sizes and settings
        per_shape = tuple(
            self._efficiency(
                [b for b in self._buckets if b.shape == shape], shape=shape
            )
            for shape in self.batch_shapes
        )
        return dataclasses.replace(
            self._efficiency(list(self._buckets)), per_shape=per_shape
        )

    def _efficiency(
        self, buckets: list[SizeBucket], shape: BatchShape | None = None
    ) -> PaddingEfficiency:
        num_batches = sum(b.num_batches for b in buckets)
        if num_batches == 0:
            return PaddingEfficiency(0.0, 0.0, 0.0, 0, shape)
        members = np.concatenate([b.members for b in buckets])

        def ratio(real: int, attribute: str) -> float:
            padded = sum(b.num_batches * getattr(b.shape, attribute) for b in buckets)
            return real / padded

        return PaddingEfficiency(
            nodes=ratio(int(self._nodes_per_graph[members].sum()), "n_node"),
            edges=ratio(int(self._edges_per_graph[members].sum()), "n_edge"),
            graphs=ratio(len(members), "n_graph"),
            num_batches=num_batches,
            shape=shape,
        )

    def describe_batching(self) -> str:
        """One line per shape: its sizes, batches per epoch and padding efficiency."""
        efficiency = self.padding_efficiency()
        lines = [
            f"{len(self.batch_shapes)} batch shape(s), {efficiency.num_batches} "
            f"batches per epoch, padding efficiency {efficiency.nodes:.1%} of "
            f"nodes, {efficiency.edges:.1%} of edges:"
        ]
        lines += [
            f"  {shape.shape}: {shape.num_batches} batches, {shape.nodes:.1%} of "
            f"nodes, {shape.edges:.1%} of edges"
            for shape in efficiency.per_shape
        ]
        return "\n".join(lines)

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
            max_batch_shapes=self.max_batch_shapes,
            target_padding_efficiency=self.target_padding_efficiency,
        )
