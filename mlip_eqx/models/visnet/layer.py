"""One ViSNet layer (Wang et al., 2024): vector-scalar interactive attention over
the neighbours, and the update of the edge features from the vectors."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int

from mlip_eqx.models.activations import ACTIVATIONS
from mlip_eqx.models.blocks.dense import Dense
from mlip_eqx.models.blocks.edge_embedding import for_both_edges
from mlip_eqx.models.visnet.vector_norm import normalise_vectors

# flax's (and torch's) default, as in mlip.
LAYER_NORM_EPSILON = 1e-5


class VisnetEdgeUpdate(eqx.Module):
    """The change of the edge features from the node vectors (every layer but the
    last): ``act(W_f f_ij) * w_ij`` where w_ij contracts the receiver's and the
    sender's projected vectors (mlip's form of their rejections from the edge
    direction, summed over all harmonic components).

    Attributes:
        edge_projection: W_f, with bias.
        target_projection: Projects the receiver's vectors (no bias).
        source_projection: Projects the sender's vectors (no bias).
    """

    edge_projection: Dense
    target_projection: Dense
    source_projection: Dense

    def __init__(self, num_channels: int, *, dtype: DTypeLike, key: jax.Array):
        """Args:
        num_channels: Number of channels.
        dtype: Dtype of the parameters.
        key: Random key.
        """
        edge_key, target_key, source_key = jax.random.split(key, 3)
        size = (num_channels, num_channels)
        self.edge_projection = Dense(*size, use_bias=True, dtype=dtype, key=edge_key)
        self.target_projection = Dense(
            *size, use_bias=False, dtype=dtype, key=target_key
        )
        self.source_projection = Dense(
            *size, use_bias=False, dtype=dtype, key=source_key
        )

    def __call__(
        self,
        vectors: Float[Array, "n_node components channels"],
        edge_features: Float[Array, "n_edge channels"],
        harmonics: Float[Array, "n_edge components"],
        senders: Int[Array, " n_edge"],
        receivers: Int[Array, " n_edge"],
        activation: str,
    ) -> Float[Array, "n_edge channels"]:
        """The change of the edge features.

        Args:
            vectors: Normalised vector features of the nodes.
            edge_features: Edge features.
            harmonics: Spherical harmonics of degree 1..l_max ("norm").
            senders: Sending node of each edge.
            receivers: Receiving node of each edge.
            activation: Name of the activation.
        """
        target = self.target_projection(vectors)[receivers]
        source = self.source_projection(vectors)[senders]
        contraction = jnp.sum(target * source, axis=1)
        # mlip's rejections contribute (|Y|^2 - 2) (T.Y)(S.Y), where |Y|^2 = l_max
        # for every edge (each degree's harmonics form a unit vector; padding
        # edges have a unit direction too): zero for l_max = 2, the default.
        l_max = math.isqrt(harmonics.shape[1] + 1) - 1
        if l_max != 2:
            directions = harmonics[:, :, None]
            target_along = jnp.sum(target * directions, axis=1)
            source_along = jnp.sum(source * directions, axis=1)
            contraction = contraction + (l_max - 2.0) * target_along * source_along
        return (
            ACTIVATIONS[activation](self.edge_projection(edge_features)) * contraction
        )


class VisnetLayer(eqx.Module):
    """Multi-head attention from the senders to each receiver, with residual
    updates of the scalar, vector and edge features.

    The scalars are layer-normalised, the vectors normalised by ``vecnorm_type``;
    per edge, the attention weight of each head is ``attn_act(sum(q_i k_j
    act(D_k f_ij)) / sqrt(head_dim))``, the scalar message ``v_j act(D_v f_ij)``
    times the weight, the vector message ``vec_j s1 + s2 Y(r_ij)`` with (s1, s2)
    = act(W_s scalar message); both messages are multiplied by the envelope and
    summed per receiver. (mlip's default, non-legacy form.)

    Attributes:
        layer_norm: Layer normalisation of the scalars.
        vector_projection: Vectors to three sets of channels (no bias).
        query_projection: q from the scalars.
        key_projection: k from the scalars.
        value_projection: v from the scalars.
        distance_key: D_k from the edge features.
        distance_value: D_v from the edge features.
        scalar_projection: W_s, the scalar message to (s1, s2).
        output_projection: The summed scalar messages to (o1, o2, o3).
        edge_update: Update of the edge features; None in the last layer.
        num_heads: Number of attention heads.
        activation: Name of the activation.
        attn_activation: Name of the activation of the attention weights.
        vecnorm_type: Normalisation of the vectors.
    """

    layer_norm: eqx.nn.LayerNorm
    vector_projection: Dense
    query_projection: Dense
    key_projection: Dense
    value_projection: Dense
    distance_key: Dense
    distance_value: Dense
    scalar_projection: Dense
    output_projection: Dense
    edge_update: VisnetEdgeUpdate | None
    num_heads: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    attn_activation: str = eqx.field(static=True)
    vecnorm_type: str = eqx.field(static=True)

    def __init__(
        self,
        num_channels: int,
        *,
        num_heads: int,
        activation: str,
        attn_activation: str,
        vecnorm_type: str,
        update_edges: bool,
        dtype: DTypeLike,
        key: jax.Array,
    ):
        """Args:
        num_channels: Number of channels (a multiple of ``num_heads``).
        num_heads: Number of attention heads.
        activation: Name of the activation.
        attn_activation: Name of the activation of the attention weights.
        vecnorm_type: "none", "rms" or "max_min".
        update_edges: Whether the layer updates the edge features (all but the
            last).
        dtype: Dtype of the parameters.
        key: Random key.
        """
        keys = iter(jax.random.split(key, 10))
        channels = num_channels

        def dense(fan_out: int, use_bias: bool = True) -> Dense:
            return Dense(
                channels, fan_out, use_bias=use_bias, dtype=dtype, key=next(keys)
            )

        self.layer_norm = eqx.nn.LayerNorm(
            channels, eps=LAYER_NORM_EPSILON, dtype=dtype
        )
        self.vector_projection = dense(3 * channels, use_bias=False)
        self.query_projection = dense(channels)
        self.key_projection = dense(channels)
        self.value_projection = dense(channels)
        self.distance_key = dense(channels)
        self.distance_value = dense(channels)
        self.scalar_projection = dense(2 * channels)
        self.output_projection = dense(3 * channels)
        self.edge_update = (
            VisnetEdgeUpdate(channels, dtype=dtype, key=next(keys))
            if update_edges
            else None
        )
        self.num_heads = num_heads
        self.activation = activation
        self.attn_activation = attn_activation
        self.vecnorm_type = vecnorm_type

    def __call__(
        self,
        scalars: Float[Array, "n_node channels"],
        vectors: Float[Array, "n_node components channels"] | None,
        edge_features: Float[Array, "n_features channels"],
        harmonics: Float[Array, "n_edge components"],
        envelope: Float[Array, " n_edge"],
        senders: Int[Array, " n_edge"],
        receivers: Int[Array, " n_edge"],
    ) -> tuple[
        Float[Array, "n_node channels"],
        Float[Array, "n_node components channels"],
        Float[Array, "n_out_features channels"],
    ]:
        """The updated (scalars, vectors, edge features).

        The first layer gets ``vectors=None``: its vector features are all zero
        (they start at zero), so every term made from them is zero and is not
        computed (the vector projections and the edge update; their parameters
        get zero gradients, as they would from the zeros).

        Edge features that are the same for both edges of every pair (before
        any edge update, in the paired layout: edge ``k + n_edge / 2`` reverses
        edge ``k``) may be given once per pair: the maps of the edge features
        then run once per pair. The returned edge features are per pair as long
        as they are not updated.

        Args:
            scalars: Scalar node features.
            vectors: Vector node features, components of degree 1..l_max; None
                for all zero.
            edge_features: Edge features, of every edge or (see above) pair.
            harmonics: Spherical harmonics of degree 1..l_max ("norm") of each edge.
            envelope: Smooth cutoff of each edge (zero for padding edges).
            senders: Sending node of each edge.
            receivers: Receiving node of each edge.
        """
        act = ACTIVATIONS[self.activation]
        num_nodes, channels = scalars.shape
        head_dim = channels // self.num_heads

        def heads(features: Float[Array, "n channels"]) -> Float[Array, "n h d"]:
            return features.reshape(-1, self.num_heads, head_dim)

        normalised = jax.vmap(self.layer_norm)(scalars)
        if vectors is not None:
            normal_vectors = normalise_vectors(vectors, self.vecnorm_type)
            vectors_1, vectors_2, vectors_3 = jnp.split(
                self.vector_projection(normal_vectors), 3, axis=-1
            )
        with jax.named_scope("attention"):
            query = heads(self.query_projection(normalised))[receivers]
            key = heads(self.key_projection(normalised))[senders]
            value = heads(self.value_projection(normalised))[senders]
            distance_key = act(self.distance_key(edge_features))
            distance_value = act(self.distance_value(edge_features))
            if edge_features.shape[0] != senders.shape[0]:  # once per pair
                distance_key = for_both_edges(distance_key)
                distance_value = for_both_edges(distance_value)
            distance_key, distance_value = heads(distance_key), heads(distance_value)
            logits = jnp.sum(query * key * distance_key, axis=-1) * head_dim**-0.5
            weights = ACTIVATIONS[self.attn_activation](logits)
            scalar_messages = (value * distance_value * weights[:, :, None]).reshape(
                -1, channels
            )
        with jax.named_scope("vector_messages"):
            # The envelope multiplies the messages; applied to (s1, s2) here, on
            # [edge, channel] arrays instead of [edge, component, channel] ones.
            if vectors is None:  # s1 would multiply zero vectors
                s2 = (
                    act(self.scalar_projection.outputs(scalar_messages, channels, None))
                    * envelope[:, None]
                )
                vector_messages = s2[:, None, :] * harmonics[:, :, None]
            else:
                s1, s2 = jnp.split(
                    act(self.scalar_projection(scalar_messages)) * envelope[:, None],
                    2,
                    axis=1,
                )
                vector_messages = (
                    normal_vectors[senders] * s1[:, None, :]
                    + s2[:, None, :] * harmonics[:, :, None]
                )
        scalar_messages = scalar_messages * envelope[:, None]
        summed_scalars = jax.ops.segment_sum(
            scalar_messages, receivers, num_segments=num_nodes
        )
        summed_vectors = jax.ops.segment_sum(
            vector_messages, receivers, num_segments=num_nodes
        )
        if vectors is None:  # o1 and o2 would multiply zero vectors
            o3 = self.output_projection.outputs(summed_scalars, 2 * channels, None)
            return scalars + o3, summed_vectors, edge_features
        o1, o2, o3 = jnp.split(self.output_projection(summed_scalars), 3, axis=1)
        scalar_change = jnp.sum(vectors_1 * vectors_2, axis=1) * o2 + o3
        vector_change = vectors_3 * o1[:, None, :] + summed_vectors
        if self.edge_update is not None:
            if edge_features.shape[0] != senders.shape[0]:  # once per pair
                edge_features = for_both_edges(edge_features)
            with jax.named_scope("edge_update"):
                edge_features = edge_features + self.edge_update(
                    normal_vectors,
                    edge_features,
                    harmonics,
                    senders,
                    receivers,
                    self.activation,
                )
        return scalars + scalar_change, vectors + vector_change, edge_features
