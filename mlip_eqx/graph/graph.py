"""The Graph PyTree: one structure, or a padded batch of structures."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

ArrayLike = Array | np.ndarray


class Graph(eqx.Module):
    """Structures as a graph of atoms (nodes) and neighbour pairs (edges).

    A batch concatenates structures along the node, edge and graph axes and pads them
    to fixed sizes: padding nodes, edges and graphs come last and are marked by the
    masks. Padding edges join the last (padding) node to itself with a zero shift, and
    the last graph is always a padding graph holding all padding nodes and edges, so
    that segment sums over graphs never mix padding into real structures.

    With ``paired_edges`` (graphs built by mlip_eqx), every edge has its reverse:
    edge ``k + n_edge_total / 2`` is the reverse of edge ``k`` (swapped sender and
    receiver, negated shift), so models can evaluate radial functions once per pair.
    A batch then holds the first halves of all its graphs (and of the padding) in
    graph order, followed by the second halves in the same order.

    Arrays may be numpy (host) or jax (device). Labels that a structure lacks are
    zero in the arrays and ``False`` in ``has_energy``/``has_forces``/``has_stress``.

    Attributes:
        positions: Cartesian positions in Å, [n_node, 3].
        species: Index of each atom's element in the dataset's element table, [n_node].
        senders: Index of the sending atom of each edge, [n_edge].
        receivers: Index of the receiving atom of each edge, [n_edge].
        shifts: Integer cell shifts per edge: the edge vector is
            ``positions[receiver] - positions[sender] + shifts @ cell``, [n_edge, 3].
        cell: Lattice vectors as rows in Å per graph (zeros if none), [n_graph, 3, 3].
        n_node: Number of nodes per graph, [n_graph].
        n_edge: Number of edges per graph, [n_graph].
        energy: Reference energy in eV, [n_graph].
        forces: Reference forces in eV/Å, [n_node, 3].
        stress: Reference stress in eV/Å³ (ASE sign convention), [n_graph, 3, 3].
        weight: Loss weight per graph (0 for padding graphs), [n_graph].
        has_energy: Whether each graph has an energy label, [n_graph].
        has_forces: Whether each graph has force labels, [n_graph].
        has_stress: Whether each graph has a stress label, [n_graph].
        node_mask: True for real nodes, [n_node].
        edge_mask: True for real edges, [n_edge].
        graph_mask: True for real graphs, [n_graph].
        dataset_idx: The data set of each graph (0 for padding graphs): it
            selects the readout head and reference energies of multi-head
            models (see :class:`~mlip_eqx.data.dataset_info.DatasetInfo`),
            [n_graph]. Optional when the graph is built by hand (as before data
            sets existed): None gives data set 0 to every graph.
        paired_edges: Whether the edges have the paired layout described above.
    """

    positions: Float[ArrayLike, "n_node 3"]
    species: Int[ArrayLike, " n_node"]
    senders: Int[ArrayLike, " n_edge"]
    receivers: Int[ArrayLike, " n_edge"]
    shifts: Int[ArrayLike, "n_edge 3"]
    cell: Float[ArrayLike, "n_graph 3 3"]
    n_node: Int[ArrayLike, " n_graph"]
    n_edge: Int[ArrayLike, " n_graph"]
    energy: Float[ArrayLike, " n_graph"]
    forces: Float[ArrayLike, "n_node 3"]
    stress: Float[ArrayLike, "n_graph 3 3"]
    weight: Float[ArrayLike, " n_graph"]
    has_energy: Bool[ArrayLike, " n_graph"]
    has_forces: Bool[ArrayLike, " n_graph"]
    has_stress: Bool[ArrayLike, " n_graph"]
    node_mask: Bool[ArrayLike, " n_node"]
    edge_mask: Bool[ArrayLike, " n_edge"]
    graph_mask: Bool[ArrayLike, " n_graph"]
    dataset_idx: Int[ArrayLike, " n_graph"] | None = None
    paired_edges: bool = eqx.field(static=True, default=False)

    def __post_init__(self) -> None:
        if self.dataset_idx is None:
            self.dataset_idx = np.zeros(np.shape(self.n_node), np.int32)

    @property
    def num_nodes(self) -> int:
        """Total (padded) number of nodes."""
        return int(self.positions.shape[-2])

    @property
    def num_edges(self) -> int:
        """Total (padded) number of edges."""
        return int(self.senders.shape[-1])

    @property
    def num_graphs(self) -> int:
        """Total (padded) number of graphs."""
        return int(self.n_node.shape[-1])

    def node_graph_index(self) -> Int[Array, " n_node"]:
        """Index of the graph that each node belongs to (jit-compatible)."""
        return jnp.repeat(
            jnp.arange(self.num_graphs),
            jnp.asarray(self.n_node),
            total_repeat_length=self.num_nodes,
        )

    def edge_graph_index(self) -> Int[Array, " n_edge"]:
        """Index of the graph that each edge belongs to (jit-compatible)."""
        if not self.paired_edges:
            return jnp.repeat(
                jnp.arange(self.num_graphs),
                jnp.asarray(self.n_edge),
                total_repeat_length=self.num_edges,
            )
        half = jnp.repeat(
            jnp.arange(self.num_graphs),
            jnp.asarray(self.n_edge) // 2,
            total_repeat_length=self.num_edges // 2,
        )
        return jnp.concatenate([half, half])

    def edge_vectors(
        self,
        positions: Float[Array, "n_node 3"] | None = None,
        cell: Float[Array, "n_graph 3 3"] | None = None,
    ) -> Float[Array, "n_edge 3"]:
        """Vectors from sender to receiver in Å, including periodic shifts.

        Args:
            positions: Positions to use instead of ``self.positions`` (Å), e.g. to
                differentiate with respect to them.
            cell: Cells to use instead of ``self.cell`` (Å), e.g. strained ones.

        Returns:
            ``positions[receivers] - positions[senders] + shifts @ cell[edge_graph]``.
        """
        positions = jnp.asarray(self.positions if positions is None else positions)
        cell = jnp.asarray(self.cell if cell is None else cell)
        edge_cells = cell[self.edge_graph_index()]
        shifts = jnp.asarray(self.shifts).astype(positions.dtype)
        cartesian_shifts = jnp.einsum("ei,eij->ej", shifts, edge_cells)
        return (
            positions[jnp.asarray(self.receivers)]
            - positions[jnp.asarray(self.senders)]
            + cartesian_shifts
        )
