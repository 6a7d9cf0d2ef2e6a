"""ViSNet's embedding: scalar node features from the species and their
neighbours, edge features from the radial basis and the two end nodes."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int

from mlip_eqx.models.blocks.dense import Dense
from mlip_eqx.models.blocks.edge_embedding import for_both_edges
from mlip_eqx.models.initialisers import normal


class VisnetEmbedding(eqx.Module):
    """Node and edge features before the first layer.

    ``x_i = combine([e(z_i), sum_j e'(z_j) W(rbf_ij) envelope(r_ij)])`` and
    ``f_ij = (x_i + x_j) W'(rbf_ij)``, with species embeddings e, e' and dense
    maps W, W' of the radial basis (mlip's node, neighbour and edge embedding).

    Attributes:
        species_embedding: e, [num_species, num_channels], ~ N(0, 1 / num_channels).
        neighbour_embedding: e', like ``species_embedding``.
        distance_projection: W, radial basis to channels.
        combine: The node's and its neighbours' embeddings to channels.
        edge_projection: W', radial basis to channels.
    """

    species_embedding: Float[Array, "num_species num_channels"]
    neighbour_embedding: Float[Array, "num_species num_channels"]
    distance_projection: Dense
    combine: Dense
    edge_projection: Dense

    def __init__(
        self,
        num_species: int,
        num_channels: int,
        num_rbf: int,
        *,
        dtype: DTypeLike,
        key: jax.Array,
    ):
        """Args:
        num_species: Number of species.
        num_channels: Number of channels.
        num_rbf: Number of radial basis functions.
        dtype: Dtype of the parameters.
        key: Random key.
        """
        keys = jax.random.split(key, 5)
        std = num_channels**-0.5
        shape = (num_species, num_channels)
        self.species_embedding = normal(keys[0], shape, dtype, std)
        self.neighbour_embedding = normal(keys[1], shape, dtype, std)
        self.distance_projection = Dense(
            num_rbf, num_channels, use_bias=True, dtype=dtype, key=keys[2]
        )
        self.combine = Dense(
            2 * num_channels, num_channels, use_bias=True, dtype=dtype, key=keys[3]
        )
        self.edge_projection = Dense(
            num_rbf, num_channels, use_bias=True, dtype=dtype, key=keys[4]
        )

    def __call__(
        self,
        node_species: Int[Array, " n_node"],
        radial_basis: Float[Array, "n_radial num_rbf"],
        envelope: Float[Array, " n_radial"],
        senders: Int[Array, " n_edge"],
        receivers: Int[Array, " n_edge"],
    ) -> tuple[
        Float[Array, "n_node num_channels"], Float[Array, "n_radial num_channels"]
    ]:
        """Scalar node features and edge features.

        Args:
            node_species: Species index of each node.
            radial_basis: Radial basis of each edge, or of each pair in the
                paired layout (half as many rows as edges: edge ``k + n_edge / 2``
                reverses edge ``k``).
            envelope: Smooth cutoff of each edge or pair (zero for padding).
            senders: Sending node of each edge.
            receivers: Receiving node of each edge.

        Returns:
            (node features, edge features); the edge features, symmetric in the
            two end nodes, are per pair when the radial basis is.
        """
        num_rows = radial_basis.shape[0]
        paired = num_rows != senders.shape[0]
        weights = self.distance_projection(radial_basis) * envelope[:, None]
        if paired:
            weights = for_both_edges(weights)
        messages = self.neighbour_embedding[node_species][senders] * weights
        summed = jax.ops.segment_sum(
            messages, receivers, num_segments=node_species.shape[0]
        )
        own = self.species_embedding[node_species]
        node_features = self.combine(jnp.concatenate([own, summed], axis=1))
        edge_features = (
            node_features[senders[:num_rows]] + node_features[receivers[:num_rows]]
        ) * self.edge_projection(radial_basis)
        return node_features, edge_features
