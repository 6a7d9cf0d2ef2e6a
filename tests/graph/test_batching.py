import dataclasses

import numpy as np
import pytest

from mlip_eqx.data.graph_creation import graph_from_chemical_system, species_table
from mlip_eqx.graph import (
    BatchTooLargeError,
    batch_graphs,
    stack_graphs,
)
from mlip_eqx.testing.structures import random_system

TABLE = species_table([29, 47, 79])


def make_graphs(seed, sizes, cutoff=4.0):
    rng = np.random.default_rng(seed)
    return [
        graph_from_chemical_system(random_system(rng, n), cutoff, TABLE) for n in sizes
    ]


def test_graph_from_system_keeps_labels_and_species():
    rng = np.random.default_rng(0)
    system = random_system(rng, 7)
    graph = graph_from_chemical_system(system, 4.0, TABLE)
    assert graph.species.tolist() == [TABLE[z] for z in system.atomic_numbers]
    np.testing.assert_array_equal(graph.forces, system.forces)
    np.testing.assert_array_equal(graph.stress[0], system.stress)
    assert graph.energy[0] == system.energy and graph.weight[0] == system.weight
    assert graph.has_energy[0] and graph.has_forces[0] and graph.has_stress[0]
    vectors = np.asarray(graph.edge_vectors())
    lengths = np.linalg.norm(vectors, axis=1)
    assert lengths.max() < 4.0 and lengths.min() > 0


def test_missing_labels_are_flagged_not_zero_flagged():
    rng = np.random.default_rng(0)
    system = random_system(rng, 4, periodic=False)
    unlabelled = type(system)(
        atomic_numbers=system.atomic_numbers, positions=system.positions
    )
    graph = graph_from_chemical_system(unlabelled, 4.0, TABLE)
    assert not graph.has_energy[0] and not graph.has_forces[0]
    assert not graph.has_stress[0]


def test_unknown_element_names_the_structure():
    rng = np.random.default_rng(0)
    system = random_system(rng, 4, elements=(1,), source="file.xyz, frame 9")
    with pytest.raises(ValueError, match=r"file.xyz, frame 9.*\[1\]"):
        graph_from_chemical_system(system, 4.0, TABLE)


def test_batch_layout_and_padding_masks():
    graphs = make_graphs(1, [3, 5, 2])
    total_nodes = 10
    total_edges = sum(int(g.n_edge[0]) for g in graphs)
    batch = batch_graphs(graphs, n_node=16, n_edge=total_edges + 7, n_graph=5)
    assert batch.positions.shape == (16, 3)
    assert batch.senders.shape == (total_edges + 7,)
    assert batch.n_node.tolist() == [3, 5, 2, 0, 6]
    assert batch.n_edge[:3].tolist() == [int(g.n_edge[0]) for g in graphs]
    assert batch.n_edge[3:].tolist() == [0, 7]
    assert batch.node_mask.tolist() == [True] * total_nodes + [False] * 6
    assert batch.edge_mask.sum() == total_edges
    assert batch.graph_mask.tolist() == [True, True, True, False, False]
    assert not batch.has_energy[3:].any() and np.all(batch.weight[3:] == 0)
    # Padding edges are self-loops on the last node: zero vectors.
    assert np.all(batch.senders[~batch.edge_mask] == 15)
    assert np.all(batch.receivers[~batch.edge_mask] == 15)
    vectors = np.asarray(batch.edge_vectors())
    np.testing.assert_allclose(vectors[~batch.edge_mask], 0.0)
    # Real edge vectors are those of each graph alone.
    expected = np.concatenate([np.asarray(g.edge_vectors()) for g in graphs])
    np.testing.assert_allclose(vectors[batch.edge_mask], expected, atol=1e-12)
    # Node and edge graph indices agree with n_node / n_edge.
    node_graph = np.asarray(batch.node_graph_index())
    assert node_graph.tolist() == [0] * 3 + [1] * 5 + [2] * 2 + [4] * 6
    edge_graph = np.asarray(batch.edge_graph_index())
    assert np.all(edge_graph[~batch.edge_mask] == 4)
    np.testing.assert_array_equal(node_graph[batch.receivers], edge_graph)


def test_batch_that_does_not_fit_raises():
    graphs = make_graphs(2, [4, 4])
    with pytest.raises(BatchTooLargeError, match="n_node=8"):
        batch_graphs(graphs, n_node=8, n_edge=10_000, n_graph=4)
    with pytest.raises(BatchTooLargeError, match="n_graph=2"):
        batch_graphs(graphs, n_node=20, n_edge=10_000, n_graph=2)


def test_empty_batch_is_all_padding_and_stacking_adds_device_axis():
    empty = batch_graphs([], n_node=5, n_edge=4, n_graph=3)
    assert not empty.node_mask.any() and not empty.graph_mask.any()
    assert empty.n_node.tolist() == [0, 0, 5]
    full = batch_graphs(make_graphs(3, [2]), n_node=5, n_edge=40, n_graph=3)
    empty = batch_graphs([], n_node=5, n_edge=40, n_graph=3)
    stacked = stack_graphs([full, empty])
    assert stacked.positions.shape == (2, 5, 3)
    assert stacked.n_node.shape == (2, 3)


def assert_paired(graph):
    """Edge k + n/2 reverses edge k and both belong to the same graph."""
    half = graph.num_edges // 2
    assert graph.paired_edges and graph.num_edges % 2 == 0
    np.testing.assert_array_equal(graph.senders[half:], graph.receivers[:half])
    np.testing.assert_array_equal(graph.receivers[half:], graph.senders[:half])
    np.testing.assert_array_equal(graph.shifts[half:], -graph.shifts[:half])
    np.testing.assert_array_equal(graph.edge_mask[half:], graph.edge_mask[:half])
    edge_graph = np.asarray(graph.edge_graph_index())
    np.testing.assert_array_equal(edge_graph[half:], edge_graph[:half])
    vectors = np.asarray(graph.edge_vectors())
    np.testing.assert_array_equal(vectors[half:], -vectors[:half])


def test_batches_of_paired_graphs_are_paired_and_keep_each_graphs_edges():
    graphs = make_graphs(5, [4, 6, 3])
    for graph in graphs:
        assert_paired(graph)
    batch = batch_graphs(
        graphs, n_node=20, n_edge=sum(g.num_edges for g in graphs) + 8, n_graph=5
    )
    assert_paired(batch)
    edge_graph = np.asarray(batch.edge_graph_index())
    node_graph = np.asarray(batch.node_graph_index())
    # Every edge joins nodes of its own graph, and each graph keeps its edge count.
    np.testing.assert_array_equal(node_graph[batch.senders], edge_graph)
    np.testing.assert_array_equal(node_graph[batch.receivers], edge_graph)
    np.testing.assert_array_equal(np.bincount(edge_graph, minlength=5), batch.n_edge)
    # The real edges of each graph are the graph's own, shifted by its node offset.
    offset = 0
    for index, graph in enumerate(graphs):
        mine = edge_graph == index
        got = set(
            zip(
                batch.senders[mine] - offset,
                batch.receivers[mine] - offset,
                map(tuple, batch.shifts[mine]),
            )
        )
        want = set(zip(graph.senders, graph.receivers, map(tuple, graph.shifts)))
        assert got == want
        offset += graph.num_nodes


def test_a_batch_with_an_unpaired_graph_uses_the_contiguous_layout():
    graphs = make_graphs(6, [4, 5])
    graphs[1] = dataclasses.replace(graphs[1], paired_edges=False)
    batch = batch_graphs(
        graphs, n_node=12, n_edge=sum(g.num_edges for g in graphs), n_graph=3
    )
    assert not batch.paired_edges
    edge_graph = np.asarray(batch.edge_graph_index())
    assert np.all(np.diff(edge_graph) >= 0)
