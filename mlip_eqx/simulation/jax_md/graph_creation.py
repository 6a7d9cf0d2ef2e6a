"""The Graph of one or more structures from their JAX-MD neighbour lists, inside
jit: indices from the lists, integer cell shifts from the minimum image."""

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from mlip_eqx.graph.graph import Graph


@dataclasses.dataclass(frozen=True)
class SystemsLayout:
    """The fixed part of the simulated structures (host, numpy).

    Their atoms are concatenated in order; one padding node follows them.

    Attributes:
        species: Species index of every atom, [num_atoms].
        sizes: Number of atoms of each structure.
        cells: Lattice vectors as rows in Å of each structure, or None for a
            non-periodic one.
        cutoff: The model's cutoff in Å.
    """

    species: np.ndarray
    sizes: tuple[int, ...]
    cells: tuple[np.ndarray | None, ...]
    cutoff: float

    @property
    def offsets(self) -> tuple[int, ...]:
        """Index of the first atom of each structure."""
        return tuple(int(x) for x in np.cumsum((0,) + self.sizes)[:-1])

    @property
    def num_atoms(self) -> int:
        """Number of real atoms, all structures together."""
        return int(sum(self.sizes))

    def slices(self) -> list[slice]:
        """The atoms of each structure."""
        return [
            slice(offset, offset + size)
            for offset, size in zip(self.offsets, self.sizes)
        ]


def graph_from_neighbor_lists(
    positions: Float[Array, "n_atoms 3"],
    neighbor_indices: Sequence[Int[Array, "2 _"]],
    layout: SystemsLayout,
) -> Graph:
    """The padded batch of the structures, for ``ForceField.energies``.

    Edge ``k`` of a structure's sparse list goes from ``idx[1, k]`` (sender) to
    ``idx[0, k]`` (receiver); its integer cell shift makes the edge vector
    ``positions[receiver] - positions[sender] + shift @ cell`` the minimum
    image. Pairs that JAX-MD padded, or farther apart than the cutoff (lists
    hold pairs within cutoff + skin), become padding edges of the padding node
    (index ``num_atoms``), so the graph has exactly the pairs within the
    cutoff. Shifts and masks carry no gradient; the edge vectors do.

    Args:
        positions: Positions in Å of all atoms, structures concatenated.
        neighbor_indices: The ``idx`` of every structure's sparse neighbour list,
            in its own atom indices (padded with its number of atoms).
        layout: The structures' species, sizes, cells and the cutoff.

    Returns:
        A Graph of one graph per structure and a padding graph.
    """
    padding_node = layout.num_atoms
    padded = jnp.concatenate([positions, jnp.zeros((1, 3), positions.dtype)])
    fixed = jax.lax.stop_gradient(padded)
    senders, receivers, shifts = [], [], []
    for idx, offset, size, cell in zip(
        neighbor_indices, layout.offsets, layout.sizes, layout.cells
    ):
        real = idx[0] < size
        receiver = jnp.where(real, idx[0] + offset, padding_node)
        sender = jnp.where(real, idx[1] + offset, padding_node)
        difference = fixed[receiver] - fixed[sender]
        if cell is None:
            shift = jnp.zeros(difference.shape, jnp.int32)
            vectors = difference
        else:
            inverse = jnp.asarray(np.linalg.inv(cell), difference.dtype)
            shift = -jnp.round(difference @ inverse)
            vectors = difference + shift @ jnp.asarray(cell, difference.dtype)
            shift = shift.astype(jnp.int32)
        within = real & (jnp.sum(vectors**2, axis=-1) < layout.cutoff**2)
        receivers.append(jnp.where(within, receiver, padding_node))
        senders.append(jnp.where(within, sender, padding_node))
        shifts.append(jnp.where(within[:, None], shift, 0))
    num_graphs = len(layout.sizes) + 1
    zero_cell = np.zeros((3, 3))
    cells = np.stack(
        [zero_cell if cell is None else cell for cell in layout.cells] + [zero_cell]
    )
    num_nodes = padding_node + 1
    return Graph(
        positions=padded,
        species=np.concatenate([layout.species, [0]]).astype(np.int32),
        senders=jnp.concatenate(senders),
        receivers=jnp.concatenate(receivers),
        shifts=jnp.concatenate(shifts),
        cell=cells.astype(np.float64),
        n_node=np.array(layout.sizes + (1,), dtype=np.int32),
        n_edge=np.array([idx.shape[1] for idx in neighbor_indices] + [0], np.int32),
        energy=np.zeros(num_graphs),
        forces=np.zeros((num_nodes, 3)),
        stress=np.zeros((num_graphs, 3, 3)),
        weight=np.zeros(num_graphs),
        has_energy=np.zeros(num_graphs, bool),
        has_forces=np.zeros(num_graphs, bool),
        has_stress=np.zeros(num_graphs, bool),
        node_mask=np.arange(num_nodes) < padding_node,
        edge_mask=jnp.concatenate(receivers) != padding_node,
        graph_mask=np.arange(num_graphs) < num_graphs - 1,
    )
