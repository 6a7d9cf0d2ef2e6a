"""Size buckets and stratified batches: a few padded shapes for any size distribution.

A data set's structures are sorted by size and cut into at most ``max_shapes``
contiguous *buckets*, each batched in one padded shape (one compiled step per
shape). Within a bucket of ``n`` structures there are ``N = ceil(n / batch_size)``
batches every epoch. The bucket's structures, largest first, form *strata* of
``N`` consecutive structures, and every batch takes one structure of each stratum
(the smallest stratum may be short: then some batches take none of it). Which
structure of a stratum goes to which batch is drawn anew every epoch.

Two consequences, whatever the draw:
- the number of batches is fixed (it depends only on the sizes and the settings);
- a batch holds at most the sum, over strata, of the largest structure of the
  stratum. That sum is the bucket's padded shape, and it exceeds the mean batch
  by less than the spread of one stratum, so little is padding.

The cut points between buckets minimise the padded nodes and edges (each relative
to the real ones) by dynamic programming over the sorted sizes; the fewest buckets
that reach the target efficiency are kept, since every shape costs a compilation.
"""

import dataclasses
import math
from collections.abc import Iterable

import numpy as np

# Cut points considered between buckets (spread over the sorted structures).
MAX_CANDIDATE_CUTS = 96
# A bucket holds at least this many batches' worth of structures, so that its
# batches are drawn from many combinations every epoch (a bucket of one batch
# would serve the same batch every epoch).
MIN_BATCHES_PER_BUCKET = 4


@dataclasses.dataclass(frozen=True, order=True)
class BatchShape:
    """The padded sizes of a batch (one compiled step per shape).

    Attributes:
        n_node: Nodes of the batch, the padding node included.
        n_edge: Directed edges of the batch.
        n_graph: Graphs of the batch, the padding graph included.
    """

    n_node: int
    n_edge: int
    n_graph: int

    def __str__(self) -> str:
        return (
            f"{self.n_graph - 1} structures, {self.n_node - 1} atoms, "
            f"{self.n_edge} edges"
        )


@dataclasses.dataclass(frozen=True, eq=False)
class SizeBucket:
    """Structures of similar size, batched in one shape.

    Attributes:
        shape: The padded shape of the bucket's batches.
        members: Indices of the bucket's structures, largest first (the strata
            are consecutive runs of ``num_batches`` of them).
        num_batches: Batches of the bucket per epoch.
    """

    shape: BatchShape
    members: np.ndarray
    num_batches: int

    def batches(self, rng: np.random.Generator | None) -> list[np.ndarray]:
        """The structure indices of each of the bucket's batches in one epoch.

        Args:
            rng: Draws which structure of each stratum joins which batch; None:
                the k-th structure of every stratum joins batch k.
        """
        count, num = len(self.members), self.num_batches
        slots = np.concatenate(
            [
                (rng.permutation(num) if rng is not None else np.arange(num))[
                    : min(num, count - start)
                ]
                for start in range(0, count, num)
            ]
        )
        grouped = self.members[np.argsort(slots, kind="stable")]
        return np.split(grouped, np.cumsum(np.bincount(slots, minlength=num))[:-1])


def plan_buckets(
    nodes: np.ndarray,
    edges: np.ndarray,
    batch_size: int,
    max_shapes: int,
    target_efficiency: float,
    node_capacity: int | None = None,
    edge_capacity: int | None = None,
) -> tuple[SizeBucket, ...]:
    """Cuts structures of these sizes into at most ``max_shapes`` buckets.

    Args:
        nodes: Atoms of every structure.
        edges: Directed edges of every structure.
        batch_size: Structures per batch, at most.
        max_shapes: Largest number of buckets (padded shapes).
        target_efficiency: The fewest buckets whose node and edge efficiencies
            (real / padded, over one epoch) both reach this are chosen; if no
            number up to ``max_shapes`` reaches it, the most efficient plan.
        node_capacity: Real atoms a batch may hold at most (None: no limit).
        edge_capacity: Real edges a batch may hold at most (None: no limit).

    Returns:
        The buckets, smallest structures first; every structure is in one. Each
        single structure must fit the capacities (check this before).
    """
    nodes = np.asarray(nodes, dtype=np.int64)
    edges = np.asarray(edges, dtype=np.int64)
    if len(nodes) == 0:
        return ()
    total_nodes, total_edges = max(int(nodes.sum()), 1), max(int(edges.sum()), 1)
    order = np.argsort(nodes / total_nodes + edges / total_edges, kind="stable")
    cuts = _candidate_cuts(len(nodes), batch_size)
    cache: dict[tuple[int, int], SizeBucket] = {}

    def bucket(start: int, stop: int) -> SizeBucket:
        if (start, stop) not in cache:
            members = order[cuts[start] : cuts[stop]][::-1]
            cache[start, stop] = _stratified_bucket(
                members, nodes, edges, batch_size, node_capacity, edge_capacity
            )
        return cache[start, stop]

    def cost(start: int, stop: int) -> float:
        shape, num = bucket(start, stop).shape, bucket(start, stop).num_batches
        return num * (shape.n_node / total_nodes + shape.n_edge / total_edges)

    last = len(cuts) - 1
    min_members = MIN_BATCHES_PER_BUCKET * batch_size
    # least[k][j]: least cost of the first cuts[j] sorted structures in k buckets.
    least = [[math.inf] * (last + 1) for _ in range(max_shapes + 1)]
    previous = [[0] * (last + 1) for _ in range(max_shapes + 1)]
    least[0][0] = 0.0
    plans = []
    for k in range(1, min(max_shapes, last) + 1):
        for stop in range(k, last + 1):
            for start in range(k - 1, stop):
                # Only a data set's single bucket may be smaller.
                only_bucket = k == 1 and stop == last
                short = cuts[stop] - cuts[start] < min_members and not only_bucket
                if short or least[k - 1][start] == math.inf:
                    continue
                total = least[k - 1][start] + cost(start, stop)
                if total < least[k][stop]:
                    least[k][stop], previous[k][stop] = total, start
        if least[k][last] == math.inf:
            break  # too few structures for k buckets of the smallest size
        bounds, stop = [], last
        for level in range(k, 0, -1):
            bounds.append((previous[level][stop], stop))
            stop = previous[level][stop]
        plan = tuple(bucket(start, stop) for start, stop in reversed(bounds))
        if min(padding_efficiency(plan, nodes, edges)) >= target_efficiency:
            return plan
        plans.append((least[k][last], plan))
    best = min(total for total, _ in plans)
    return next(plan for total, plan in plans if total <= best * (1 + 1e-9))


def covering_shape(
    shape: BatchShape, candidates: Iterable[BatchShape], max_growth: float = 1.5
) -> BatchShape | None:
    """The smallest of ``candidates`` that batches of ``shape`` fit in, with at
    most ``max_growth`` times its nodes and edges, or None.

    A step already compiled for such a shape runs these batches padded to it
    instead of compiling anew (e.g. the test set evaluated with the shapes of
    the validation set): a compilation costs seconds to minutes, the extra
    padding a fraction of one pass.
    """
    fitting = [
        c
        for c in candidates
        if c.n_graph == shape.n_graph
        and shape.n_node <= c.n_node <= max_growth * shape.n_node
        and shape.n_edge <= c.n_edge <= max_growth * shape.n_edge
    ]
    return min(fitting, key=lambda c: (c.n_node + c.n_edge, c), default=None)


def padding_efficiency(
    buckets: tuple[SizeBucket, ...], nodes: np.ndarray, edges: np.ndarray
) -> tuple[float, float]:
    """Real / padded nodes and edges over one epoch of ``buckets``."""
    padded_nodes = sum(b.num_batches * b.shape.n_node for b in buckets)
    padded_edges = sum(b.num_batches * b.shape.n_edge for b in buckets)
    return (
        float(np.sum(nodes)) / max(padded_nodes, 1),
        float(np.sum(edges)) / max(padded_edges, 1),
    )


def _candidate_cuts(count: int, batch_size: int) -> list[int]:
    """Positions in the sorted order where a bucket may end: multiples of the
    batch size (so that buckets fill whole batches), thinned out on large sets."""
    positions = list(range(batch_size, count, batch_size))
    if len(positions) > MAX_CANDIDATE_CUTS:
        picks = np.unique(np.linspace(0, len(positions) - 1, MAX_CANDIDATE_CUTS))
        positions = [positions[int(round(i))] for i in picks]
    return [0] + positions + [count]


def _stratified_bucket(
    members: np.ndarray,
    nodes: np.ndarray,
    edges: np.ndarray,
    batch_size: int,
    node_capacity: int | None,
    edge_capacity: int | None,
) -> SizeBucket:
    """The bucket of ``members`` (largest first) with the fewest batches whose
    shape fits the capacities (at least ``ceil(len / batch_size)`` batches)."""

    def shape(num_batches: int) -> BatchShape:
        return _stratified_shape(nodes[members], edges[members], num_batches)

    def fits(candidate: BatchShape) -> bool:
        return (node_capacity is None or candidate.n_node - 1 <= node_capacity) and (
            edge_capacity is None or candidate.n_edge <= edge_capacity
        )

    low, high = -(-len(members) // batch_size), len(members)
    if not fits(shape(low)):
        while high - low > 1:  # the shape shrinks (nearly) monotonically
            middle = (low + high) // 2
            low, high = (low, middle) if fits(shape(middle)) else (middle, high)
        low = high
        while not fits(shape(low)):
            low += 1  # single structures fit (checked before), so this ends
    return SizeBucket(shape(low), members, low)


def _stratified_shape(
    nodes: np.ndarray, edges: np.ndarray, num_batches: int
) -> BatchShape:
    """The shape that holds any batch of the strata of these sizes (largest
    first) dealt into ``num_batches`` batches."""
    num_strata = -(-len(nodes) // num_batches)

    def bound(sizes: np.ndarray) -> int:
        padded = np.zeros(num_strata * num_batches, dtype=np.int64)
        padded[: len(sizes)] = sizes
        return int(padded.reshape(num_strata, num_batches).max(axis=1).sum())

    return BatchShape(
        n_node=bound(nodes) + 1, n_edge=max(2, bound(edges)), n_graph=num_strata + 1
    )
