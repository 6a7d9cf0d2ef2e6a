"""One NequIP layer (Batzner et al., 2022): convolution, gate, self-connection."""

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
    message_couplings,
    summed_grouped_messages,
)
from mlip_eqx.models.blocks.radial_mlp import (
    UnnormalisedRadialMLP,
    unnormalised_radial_mlp,
)
from mlip_eqx.models.nequip.irreps import LayerIrreps


class NequipLayer(eqx.Module):
    """Linear, tensor product of the sender features with the spherical harmonics
    weighted per path and channel by a radial MLP, sum over the neighbours divided
    by avg_num_neighbors, linear to scalars, gates and non-scalars, plus a
    species-dependent self-connection of the input, then the gate (even: swish,
    odd: tanh, normalised as e3nn's ``gate``).

    The self-connection is a linear map per species whose fan-in counts the
    species one-hot too (the original's tensor product with it): its output is
    divided by sqrt(fan-in x num_species).

    Attributes:
        linear_in: Linear map of the input features.
        radial_mlp: Maps the radial embedding to one weight per channel of every
            path of ``irreps.radial_paths``.
        linear_out: Linear map of the summed messages to ``irreps.gate_in``.
        self_connection: Species-dependent linear map of the input features.
        irreps: The planned irreps of the layer.
        couplings: The message structure of the nonzero input irreps.
        radial_columns: Column of the radial MLP's output for each radial weight of
            ``couplings`` (the paths of zero input irreps are not used).
        avg_num_neighbors: Divides the sum over neighbours.
        num_species: Number of species.
    """

    linear_in: EquivariantLinear
    radial_mlp: UnnormalisedRadialMLP
    linear_out: EquivariantLinear
    self_connection: EquivariantLinear
    irreps: LayerIrreps = eqx.field(static=True)
    couplings: tuple[MessageCoupling, ...] = eqx.field(static=True)
    radial_columns: tuple[int, ...] = eqx.field(static=True)
    avg_num_neighbors: float = eqx.field(static=True)
    num_species: int = eqx.field(static=True)

    def __init__(
        self,
        irreps: LayerIrreps,
        *,
        l_max: int,
        num_radial: int,
        radial_hidden: tuple[int, ...],
        radial_activation: str,
        radial_variance_scale: float,
        avg_num_neighbors: float,
        num_species: int,
        dtype: DTypeLike,
        key: jax.Array,
    ):
        """Args:
        irreps: The layer's irreps (see
            :func:`~mlip_eqx.models.nequip.irreps.layer_irreps`).
        l_max: Highest degree of the spherical harmonics.
        num_radial: Number of radial features per edge.
        radial_hidden: Widths of the radial MLP's hidden layers.
        radial_activation: Activation of the radial MLP.
        radial_variance_scale: Variance times fan-in of the radial MLP's hidden
            weights at initialisation.
        avg_num_neighbors: Divides the sum over neighbours.
        num_species: Number of species.
        dtype: Dtype of the weights.
        key: Random key.
        """
        in_key, mlp_key, out_key, self_key = jax.random.split(key, 4)
        self.irreps = irreps
        self.avg_num_neighbors = float(avg_num_neighbors)
        self.num_species = num_species
        self.linear_in = EquivariantLinear(
            irreps.nonzero_in, irreps.nonzero_in, dtype=dtype, key=in_key
        )
        self.couplings = message_couplings(
            self.linear_in.irreps_out, l_max, irreps.gate_in
        )
        self.radial_columns = _radial_columns(irreps, self.couplings)
        self.radial_mlp = UnnormalisedRadialMLP(
            (num_radial, *radial_hidden, irreps.num_radial_weights),
            radial_activation,
            radial_variance_scale,
            dtype,
            mlp_key,
        )
        messages = sum((c.irreps for c in self.couplings), e3nn.Irreps(""))
        self.linear_out = EquivariantLinear(
            messages, irreps.gate_in, dtype=dtype, key=out_key, force_irreps_out=True
        )
        self.self_connection = EquivariantLinear(
            irreps.nonzero_in,
            irreps.gate_in,
            dtype=dtype,
            key=self_key,
            num_species=num_species,
            force_irreps_out=True,
        )

    def __call__(
        self,
        node_features: e3nn.IrrepsArray,
        node_species: Int[Array, " n_node"],
        harmonics: Float[Array, "n_edge harmonics"],
        radial_features: Float[Array, "n_radial num_radial"],
        senders: Int[Array, " n_edge"],
        receivers: Int[Array, " n_edge"],
    ) -> e3nn.IrrepsArray:
        """New node features [n_node, irreps.nonzero_out].

        Args:
            node_features: [n_node, irreps.nonzero_in].
            node_species: Species index of each node.
            harmonics: Spherical harmonics of degree 0..l_max of the edge vectors
                (see :func:`~mlip_eqx.models.blocks.harmonics.edge_harmonics`).
            radial_features: Radial embedding, zero for padding edges; of every
                edge, or of the first half of paired edges (see ``Graph``), whose
                second half repeats it.
            senders: Sending node of each edge.
            receivers: Receiving node of each edge.
        """
        with jax.named_scope("self_connection"):
            self_connection = self.self_connection(node_features, node_species)
            self_connection = self_connection * self.num_species**-0.5
        with jax.named_scope("linear_in"):
            node_features = self.linear_in(node_features)
        with jax.named_scope("radial_mlp"):
            weights = self.radial_mlp.weights
            used = weights[-1][:, jnp.asarray(self.radial_columns)]
            radial_weights = unnormalised_radial_mlp(
                weights[:-1] + (used,), radial_features, self.radial_mlp.activation
            )
            if radial_weights.shape[0] != senders.shape[0]:  # paired edges
                radial_weights = for_both_edges(radial_weights)
        with jax.named_scope("messages"):
            summed = summed_grouped_messages(
                self.couplings,
                node_features,
                harmonics,
                radial_weights,
                senders,
                receivers,
            )
        with jax.named_scope("linear_out"):
            node_features = self.linear_out(summed / self.avg_num_neighbors)
        with jax.named_scope("gate"):
            gated = e3nn.gate(
                node_features + self_connection,
                even_act=jax.nn.swish,
                odd_act=jnp.tanh,
                even_gate_act=jax.nn.swish,
                odd_gate_act=jnp.tanh,
            )
        return gated.filter(keep=self.irreps.nonzero_out)


def _radial_columns(
    irreps: LayerIrreps, couplings: tuple[MessageCoupling, ...]
) -> tuple[int, ...]:
    """For each (path, channel) weight of the couplings, path-major and coupling
    after coupling, its column among the radial MLP's outputs."""
    offsets, offset = {}, 0
    for path in irreps.radial_paths:
        offsets[path.source, path.degree, path.target] = offset
        offset += path.num_channels
    columns = []
    for coupling in couplings:
        for target, (source, degree) in zip(
            coupling.path_irreps, coupling.path_sources
        ):
            start = offsets[source, degree, target]
            columns.extend(range(start, start + coupling.num_channels))
    return tuple(columns)
