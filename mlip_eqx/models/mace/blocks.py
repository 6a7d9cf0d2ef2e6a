"""The MACE-specific blocks of a MACE layer (Batatia et al., 2022): the
interaction and the product basis."""

import e3nn_jax as e3nn
import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int

from mlip_eqx.models.blocks.edge_embedding import for_both_edges
from mlip_eqx.models.blocks.linear import EquivariantLinear
from mlip_eqx.models.blocks.message_passing import (
    MessageCoupling,
    message_coupling,
    summed_messages,
)
from mlip_eqx.models.blocks.radial_mlp import RadialMLP
from mlip_eqx.models.mace.symmetric_contraction import SymmetricContraction


class InteractionBlock(eqx.Module):
    """Linear, radial-MLP-weighted tensor product with the edge directions summed
    over the neighbours (divided by avg_num_neighbors, or by 1 + a learned
    density of neighbours), linear.

    The spherical harmonics are those of the vector from receiver to sender (minus
    the edge vector), as in the original library. The learned density (mace-torch's
    ``RealAgnosticDensity*InteractionBlock``) of a node is the sum over its edges
    of ``tanh((w . radial_features)^2)``, with ``w`` a bias-free linear map.
    """

    linear_up: EquivariantLinear
    radial_mlp: RadialMLP
    linear_down: EquivariantLinear
    density_mlp: RadialMLP | None
    target_irreps: e3nn.Irreps = eqx.field(static=True)
    coupling: MessageCoupling = eqx.field(static=True)
    avg_num_neighbors: float = eqx.field(static=True)

    def __init__(
        self,
        source_irreps: e3nn.Irreps,
        target_irreps: e3nn.Irreps,
        *,
        l_max: int,
        num_radial: int,
        avg_num_neighbors: float,
        activation: str,
        dtype: DTypeLike,
        key: jax.Array,
        radial_hidden: tuple[int, ...] = (64, 64, 64),
        density_normalisation: bool = False,
    ):
        """Args:
        source_irreps: Irreps of the input node features.
        target_irreps: Irreps of the messages and of the output.
        l_max: Highest degree of the spherical harmonics.
        num_radial: Number of radial features per edge.
        avg_num_neighbors: Divides the sum over neighbours.
        activation: Activation of the radial MLP.
        radial_hidden: Sizes of the hidden layers of the radial MLP.
        density_normalisation: Divide the neighbour sum by 1 + the learned
            density instead of avg_num_neighbors.
        dtype: Dtype of the weights.
        key: Random key.
        """
        up_key, mlp_key, down_key = jax.random.split(key, 3)
        source_irreps = e3nn.Irreps(source_irreps)
        self.target_irreps = e3nn.Irreps(target_irreps)
        self.avg_num_neighbors = float(avg_num_neighbors)
        self.linear_up = EquivariantLinear(
            source_irreps, source_irreps, dtype=dtype, key=up_key
        )
        self.coupling = message_coupling(source_irreps, l_max, self.target_irreps)
        messages = self.coupling.irreps
        self.radial_mlp = RadialMLP(
            (num_radial, *radial_hidden, messages.num_irreps),
            activation,
            dtype,
            mlp_key,
        )
        self.linear_down = EquivariantLinear(
            messages, self.target_irreps, dtype=dtype, key=down_key
        )
        self.density_mlp = (
            RadialMLP((num_radial, 1), activation, dtype, jax.random.fold_in(key, 3))
            if density_normalisation
            else None
        )

    @property
    def irreps_out(self) -> e3nn.Irreps:
        return self.linear_down.irreps_out

    def __call__(
        self,
        node_features: e3nn.IrrepsArray,
        harmonics: Float[Array, "n_edge harmonics"],
        radial_features: Float[Array, "n_radial num_radial"],
        senders: Int[Array, " n_edge"],
        receivers: Int[Array, " n_edge"],
    ) -> e3nn.IrrepsArray:
        """New node features [n_node, irreps_out].

        Args:
            node_features: [n_node, source irreps].
            harmonics: Spherical harmonics of degree 0..l_max of the vectors from
                receiver to sender (see
                :func:`~mlip_eqx.models.blocks.harmonics.edge_harmonics`).
            radial_features: Radial embedding, zero for padding edges; of every
                edge, or of the first half of paired edges (see ``Graph``), whose
                second half repeats it.
            senders: Sending node of each edge.
            receivers: Receiving node of each edge.
        """
        with jax.named_scope("linear_up"):
            node_features = self.linear_up(node_features)
        with jax.named_scope("radial_mlp"):
            radial_weights = self.radial_mlp(radial_features)
            if radial_weights.shape[0] != senders.shape[0]:  # paired edges
                radial_weights = for_both_edges(radial_weights)
        with jax.named_scope("messages"):
            summed = summed_messages(
                self.coupling,
                node_features,
                harmonics,
                radial_weights,
                senders,
                receivers,
            )
        if self.density_mlp is None:
            normalisation = self.avg_num_neighbors
        else:
            with jax.named_scope("density"):
                normalisation = 1.0 + self._density(radial_features, receivers, summed)
        with jax.named_scope("linear_down"):
            return self.linear_down(summed / normalisation)

    def _density(
        self,
        radial_features: Float[Array, "n_radial num_radial"],
        receivers: Int[Array, " n_edge"],
        summed: e3nn.IrrepsArray,
    ) -> Float[Array, "n_node 1"]:
        """The learned density of neighbours of every node, [n_node, 1]."""
        edge_density = jnp.tanh(self.density_mlp(radial_features) ** 2)
        if edge_density.shape[0] != receivers.shape[0]:  # paired edges
            edge_density = for_both_edges(edge_density)
        return jax.ops.segment_sum(
            edge_density, receivers, num_segments=summed.shape[0]
        )


class ProductBasisBlock(eqx.Module):
    """Symmetric contraction of each channel's features, then a linear map."""

    symmetric_contraction: SymmetricContraction
    linear: EquivariantLinear
    num_channels: int = eqx.field(static=True)

    def __init__(
        self,
        irreps_in: e3nn.Irreps,
        target_irreps: e3nn.Irreps,
        *,
        num_channels: int,
        correlation: int,
        num_species: int,
        symmetric_basis: bool,
        dtype: DTypeLike,
        key: jax.Array,
    ):
        """Args:
        irreps_in: Irreps of the input, num_channels of each irrep.
        target_irreps: Irreps of the output.
        num_channels: Number of channels.
        correlation: Highest order of the contraction.
        num_species: Number of species.
        symmetric_basis: Parametrise with the symmetric tensor basis.
        dtype: Dtype of the weights.
        key: Random key.
        """
        contraction_key, linear_key = jax.random.split(key)
        self.num_channels = num_channels
        per_channel = e3nn.Irreps([ir for _, ir in e3nn.Irreps(irreps_in)]).regroup()
        self.symmetric_contraction = SymmetricContraction(
            per_channel,
            e3nn.Irreps(target_irreps),
            correlation=correlation,
            num_species=num_species,
            num_channels=num_channels,
            symmetric_basis=symmetric_basis,
            dtype=dtype,
            key=contraction_key,
        )
        self.linear = EquivariantLinear(
            num_channels * self.symmetric_contraction.irreps_out,
            target_irreps,
            dtype=dtype,
            key=linear_key,
            force_irreps_out=True,
        )

    def __call__(
        self, node_features: e3nn.IrrepsArray, node_species: Int[Array, " n_node"]
    ) -> e3nn.IrrepsArray:
        features = node_features.mul_to_axis(self.num_channels)
        with jax.named_scope("symmetric_contraction"):
            contracted = self.symmetric_contraction(features.array, node_species)
        with jax.named_scope("product_linear"):
            return self.linear(contracted.axis_to_mul())
