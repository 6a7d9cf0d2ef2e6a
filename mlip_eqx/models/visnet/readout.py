"""ViSNet's readout: gated equivariant blocks (Schütt et al., PaiNN, 2021) from
the scalar and vector features to one output per node."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float

from mlip_eqx.models.activations import ACTIVATIONS
from mlip_eqx.models.blocks.dense import Dense
from mlip_eqx.models.blocks.radial import safe_norm


class GatedEquivariantBlock(eqx.Module):
    """Scalars and vectors to fewer channels: an MLP of the scalars and of the
    norms of projected vectors gives the new scalars and, per channel, a gate of
    another projection of the vectors.

    Attributes:
        norm_projection: Vectors to the channels whose norms enter the MLP.
        vector_projection: Vectors to the output channels (gated).
        hidden: First layer of the MLP (the activation follows).
        output: Second layer: output scalars and gates.
        activation: Name of the activation.
        activate_scalars: Whether the output scalars get the activation too.
    """

    norm_projection: Dense
    vector_projection: Dense
    hidden: Dense
    output: Dense
    activation: str = eqx.field(static=True)
    activate_scalars: bool = eqx.field(static=True)

    def __init__(
        self,
        num_channels: int,
        out_channels: int,
        *,
        activation: str,
        activate_scalars: bool,
        dtype: DTypeLike,
        key: jax.Array,
    ):
        """Args:
        num_channels: Channels of the input scalars and vectors (and of the MLP's
            hidden layer).
        out_channels: Channels of the output scalars and vectors.
        activation: Name of the activation.
        activate_scalars: Apply the activation to the output scalars.
        dtype: Dtype of the parameters.
        key: Random key.
        """
        keys = jax.random.split(key, 4)
        self.norm_projection = Dense(
            num_channels, num_channels, use_bias=False, dtype=dtype, key=keys[0]
        )
        self.vector_projection = Dense(
            num_channels, out_channels, use_bias=False, dtype=dtype, key=keys[1]
        )
        self.hidden = Dense(
            2 * num_channels, num_channels, use_bias=True, dtype=dtype, key=keys[2]
        )
        self.output = Dense(
            num_channels, 2 * out_channels, use_bias=True, dtype=dtype, key=keys[3]
        )
        self.activation = activation
        self.activate_scalars = activate_scalars

    def __call__(
        self,
        scalars: Float[Array, "n_node channels"],
        vectors: Float[Array, "n_node components channels"],
    ) -> tuple[
        Float[Array, "n_node out_channels"],
        Float[Array, "n_node components out_channels"],
    ]:
        """The output (scalars, vectors)."""
        act = ACTIVATIONS[self.activation]
        norms, _ = safe_norm(jnp.swapaxes(self.norm_projection(vectors), 1, 2))
        hidden = act(self.hidden(jnp.concatenate([scalars, norms], axis=-1)))
        scalars, gates = jnp.split(self.output(hidden), 2, axis=-1)
        vectors = gates[:, None, :] * self.vector_projection(vectors)
        return (act(scalars) if self.activate_scalars else scalars), vectors


class VisnetReadoutHead(eqx.Module):
    """Two gated equivariant blocks: channels to half as many, then to one
    output per node.

    The second block's vector output (and so its ``vector_projection``) is not
    used; the parameters are kept, as in mlip, so that the parameter layout and
    count are the original's.

    Attributes:
        blocks: The two blocks.
    """

    blocks: tuple[GatedEquivariantBlock, GatedEquivariantBlock]

    def __init__(
        self, num_channels: int, *, activation: str, dtype: DTypeLike, key: jax.Array
    ):
        """Args:
        num_channels: Channels of the node features.
        activation: Name of the activation.
        dtype: Dtype of the parameters.
        key: Random key.
        """
        first_key, second_key = jax.random.split(key)
        half = num_channels // 2
        self.blocks = (
            GatedEquivariantBlock(
                num_channels,
                half,
                activation=activation,
                activate_scalars=True,
                dtype=dtype,
                key=first_key,
            ),
            GatedEquivariantBlock(
                half,
                1,
                activation=activation,
                activate_scalars=False,
                dtype=dtype,
                key=second_key,
            ),
        )

    def __call__(
        self,
        scalars: Float[Array, "n_node channels"],
        vectors: Float[Array, "n_node components channels"],
    ) -> Float[Array, " n_node"]:
        """The output of every node (normalised features in)."""
        for block in self.blocks:
            scalars, vectors = block(scalars, vectors)
        return scalars[:, 0]
