import numpy as np
import pytest

from mlip_eqx.data.batch_shapes import BatchShape, covering_shape
from mlip_eqx.data.graph_creation import graph_from_chemical_system, species_table
from mlip_eqx.data.graph_dataset import GraphDataset, StructureTooLargeError
from mlip_eqx.testing.structures import random_system

TABLE = species_table([29, 47, 79])


@pytest.fixture(scope="module")
def graphs():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 9, 23)
    return [
        graph_from_chemical_system(random_system(rng, int(n)), 3.5, TABLE)
        for n in sizes
    ]


def batch_structure_ids(batch):
    """Identify the structures in a batch by their (unique, random) energies."""
    return sorted(np.asarray(batch.energy)[np.asarray(batch.graph_mask)].tolist())


def test_every_structure_once_per_epoch_in_few_shapes(graphs):
    dataset = GraphDataset(graphs, batch_size=4, max_n_node=5, max_n_edge=40)
    all_energies = sorted(float(g.energy[0]) for g in graphs)
    assert 1 <= len(dataset.batch_shapes) <= 6
    for epoch in range(3):
        seen, shapes = [], set()
        for batch in dataset.iter_batches(epoch):
            seen += batch_structure_ids(batch)
            shapes.add(BatchShape(batch.num_nodes, batch.num_edges, batch.num_graphs))
            assert batch.graph_mask.sum() <= 4
            assert batch.node_mask.sum() == batch.n_node[batch.graph_mask].sum()
            assert batch.node_mask.sum() <= 4 * 5 and batch.edge_mask.sum() <= 320
        assert sorted(seen) == all_energies
        assert shapes == set(dataset.batch_shapes)
        assert dataset.num_batches(epoch) == len(dataset.batch_indices(epoch))


def test_the_number_of_batches_is_the_same_every_epoch(graphs):
    dataset = GraphDataset(graphs, batch_size=4, max_n_node=5, max_n_edge=40)
    counts = {len(dataset.batch_indices(epoch)) for epoch in range(20)}
    assert counts == {dataset.num_batches()} == {len(dataset)}
    compositions = {
        tuple(sorted(tuple(sorted(b.tolist())) for b in dataset.batch_indices(e)))
        for e in range(20)
    }
    assert len(compositions) > 10  # the batches are drawn anew every epoch


def test_one_shape_when_asked(graphs):
    dataset = GraphDataset(graphs, batch_size=4, max_batch_shapes=1)
    [shape] = dataset.batch_shapes
    assert shape.n_graph == 5
    assert dataset.num_batches() == -(-len(graphs) // 4)
    assert dataset.padding_efficiency().per_shape[0].shape == shape


def test_batches_never_exceed_their_shape_on_any_draw():
    """The shape bounds every draw of the strata (batch_graphs raises if not)."""
    rng = np.random.default_rng(5)
    graphs = [
        graph_from_chemical_system(
            random_system(rng, int(n), periodic=bool(n % 2)), 3.5, TABLE
        )
        for n in rng.integers(1, 30, 61)
    ]
    dataset = GraphDataset(graphs, batch_size=5, num_batch_prefetch=0)
    for epoch in range(30):
        served = [int(b.graph_mask.sum()) for b in dataset.iter_batches(epoch)]
        assert sum(served) == len(graphs)


def test_mixed_sizes_pad_less_with_several_shapes():
    rng = np.random.default_rng(6)
    sizes = np.concatenate([rng.integers(1, 6, 40), rng.integers(40, 64, 40)])
    graphs = [
        graph_from_chemical_system(random_system(rng, int(n)), 3.0, TABLE)
        for n in sizes
    ]
    one = GraphDataset(graphs, batch_size=4, max_batch_shapes=1).padding_efficiency()
    dataset = GraphDataset(graphs, batch_size=4, target_padding_efficiency=0.9)
    several = dataset.padding_efficiency()
    assert 1 < len(several.per_shape) <= 6
    assert several.nodes >= 0.9 and several.edges >= 0.9
    assert several.nodes > one.nodes and several.edges > one.edges
    assert sum(s.num_batches for s in several.per_shape) == several.num_batches
    real_nodes = sum(int(g.n_node[0]) for g in graphs)
    padded = sum(s.num_batches * s.shape.n_node for s in several.per_shape)
    assert several.nodes == pytest.approx(real_nodes / padded)


def test_shuffling_depends_only_on_seed_and_epoch(graphs):
    first = GraphDataset(graphs, batch_size=4, max_n_node=5, max_n_edge=40, seed=3)
    second = GraphDataset(graphs, batch_size=4, max_n_node=5, max_n_edge=40, seed=3)
    list(second)  # advancing the iteration counter must not change iter_batches
    order = [batch_structure_ids(b) for b in first.iter_batches(2)]
    assert order == [batch_structure_ids(b) for b in second.iter_batches(2)]
    assert order != [batch_structure_ids(b) for b in first.iter_batches(1)]
    other_seed = GraphDataset(graphs, batch_size=4, max_n_node=5, max_n_edge=40, seed=4)
    assert order != [batch_structure_ids(b) for b in other_seed.iter_batches(2)]


def test_plain_iteration_reshuffles_between_epochs_and_len_matches(graphs):
    dataset = GraphDataset(graphs, batch_size=4, max_n_node=5, max_n_edge=40)
    expected_len = len(dataset)
    first = [batch_structure_ids(b) for b in dataset]
    assert len(first) == expected_len
    second = [batch_structure_ids(b) for b in dataset]
    assert first == [batch_structure_ids(b) for b in dataset.iter_batches(0)]
    assert second == [batch_structure_ids(b) for b in dataset.iter_batches(1)]
    assert first != second


def test_no_shuffle_serves_the_same_batches_every_epoch(graphs):
    dataset = GraphDataset(graphs, batch_size=4, should_shuffle=False)
    first = [batch_structure_ids(b) for b in dataset.iter_batches(0)]
    assert first == [batch_structure_ids(b) for b in dataset.iter_batches(5)]
    again = GraphDataset(graphs, batch_size=4, should_shuffle=False)
    assert first == [batch_structure_ids(b) for b in again.iter_batches(1)]


def test_device_stacking_groups_one_shape_and_pads_with_empty_batches(graphs):
    dataset = GraphDataset(graphs, batch_size=2, max_batch_shapes=3)
    assert len(dataset.batch_shapes) > 1
    groups = list(dataset.iter_batches(0, num_devices=4))
    assert len(groups) == dataset.num_steps(4)
    empty_slots = 0
    for group, (shape, batches) in zip(groups, dataset.steps(0, 4), strict=True):
        assert group.positions.shape == (4, shape.n_node, 3)
        assert group.senders.shape == (4, shape.n_edge)
        for slot in range(len(batches), 4):
            assert not group.graph_mask[slot].any() and not group.node_mask[slot].any()
            empty_slots += 1
    assert empty_slots == 4 * len(groups) - dataset.num_batches()
    seen = sorted(
        e
        for g in groups
        for e in np.asarray(g.energy)[np.asarray(g.graph_mask)].tolist()
    )
    assert seen == sorted(float(g.energy[0]) for g in graphs)


def test_padding_efficiency_counts_real_over_padded(graphs):
    dataset = GraphDataset(graphs, batch_size=4, max_n_node=5, max_n_edge=40)
    efficiency = dataset.padding_efficiency(0)
    real_nodes = sum(int(g.n_node[0]) for g in graphs)
    padded_nodes = sum(batch.num_nodes for batch in dataset.iter_batches(0))
    assert efficiency.num_batches == dataset.num_batches(0)
    assert efficiency.nodes == pytest.approx(real_nodes / padded_nodes)
    assert 0 < efficiency.edges <= 1 and 0 < efficiency.graphs <= 1
    assert "batch shape" in dataset.describe_batching()


def test_structure_larger_than_a_batch_is_an_error_naming_it(graphs):
    sources = [f"data.xyz, frame {i}" for i in range(len(graphs))]
    too_big = [i for i, g in enumerate(graphs) if int(g.n_node[0]) > 4]
    with pytest.raises(
        StructureTooLargeError,
        match=f"frame {too_big[0]}: .* at most 4 atoms.*{len(too_big)} structure",
    ):
        GraphDataset(
            graphs, batch_size=1, max_n_node=4, max_n_edge=1000, sources=sources
        )
    biggest_edges = max(int(g.n_edge[0]) for g in graphs)
    with pytest.raises(StructureTooLargeError, match="edges"):
        GraphDataset(
            graphs, batch_size=1, max_n_node=100, max_n_edge=biggest_edges // 2 - 1
        )


def test_too_large_error_names_the_sizes_that_would_fit(graphs):
    sources = [f"data.xyz, frame {i}" for i in range(len(graphs))]
    nodes = np.array([int(g.n_node[0]) for g in graphs])
    edges = np.array([int(g.n_edge[0]) for g in graphs])
    first = int(np.flatnonzero(nodes > 2)[0])
    fit_node, fit_edge = -(-nodes[first] // 2), max(1, -(-edges[first] // 4))
    with pytest.raises(
        StructureTooLargeError,
        match=f"frame {first}: .*max_n_node >= {fit_node} and max_n_edge >= "
        f"{fit_edge} would fit it",
    ):
        GraphDataset(graphs, batch_size=2, max_n_node=1, max_n_edge=1, sources=sources)
    fit_all = (int(-(-nodes.max() // 2)), int(-(-edges.max() // 4)))
    with pytest.raises(
        StructureTooLargeError,
        match=f"max_n_node >= {fit_all[0]} and max_n_edge >= {fit_all[1]} would fit "
        "all of them",
    ):
        GraphDataset(graphs, batch_size=2, max_n_node=1, max_n_edge=1, sources=sources)
    GraphDataset(graphs, batch_size=2, max_n_node=fit_all[0], max_n_edge=fit_all[1])


def test_prefetch_gives_the_same_batches(graphs):
    eager = GraphDataset(
        graphs, batch_size=3, max_n_node=6, max_n_edge=40, num_batch_prefetch=0
    )
    threaded = GraphDataset(
        graphs, batch_size=3, max_n_node=6, max_n_edge=40, num_batch_prefetch=2
    )
    for a, b in zip(eager.iter_batches(1), threaded.iter_batches(1), strict=True):
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.senders, b.senders)


def test_covering_shape_is_the_smallest_compiled_one_within_the_growth():
    shape = BatchShape(n_node=41, n_edge=800, n_graph=5)
    roomy = BatchShape(n_node=50, n_edge=900, n_graph=5)
    roomier = BatchShape(n_node=60, n_edge=1100, n_graph=5)
    assert covering_shape(shape, [roomier, roomy]) == roomy
    assert covering_shape(shape, [roomier]) == roomier
    assert covering_shape(shape, [shape]) == shape
    too_large = BatchShape(n_node=62, n_edge=900, n_graph=5)
    too_small = BatchShape(n_node=40, n_edge=2000, n_graph=5)
    other_batch_size = BatchShape(n_node=50, n_edge=900, n_graph=9)
    for candidate in (too_large, too_small, other_batch_size):
        assert covering_shape(shape, [candidate]) is None, candidate
    assert covering_shape(shape, [too_large], max_growth=2.0) == too_large
