"""One NequIP layer (Batzner et al., 2022): convolution, gate, self-connection."""

from collections.abc import Callable

import e3nn_jax as e3nn
import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int

from mlip_eqx.models.activations import ACTIVATIONS
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
from mlip_eqx.utils.precision_cache import cache_per_precision


class NequipLayer(eqx.Module):
    """Linear, tensor product of the sender features with the spherical harmonics
    weighted per path and channel by a radial MLP, sum over the neighbours divided
    by avg_num_neighbors, linear to scalars, gates and non-scalars, plus a
    species-dependent self-connection of the input (optional), then the gate
    (by default even: swish, odd: tanh, normalised as e3nn's ``gate``).

    The self-connection is a linear map per species. In the original library's
    0.1 its fan-in counts the species one-hot too (a tensor product with it): its
    output is divided by sqrt(fan-in x num_species); in its 0.2 by sqrt(fan-in).

    Attributes:
        linear_in: Linear map of the input features.
        radial_mlp: Maps the radial embedding to one weight per channel of every
            path of ``irreps.radial_paths``.
        linear_out: Linear map of the summed messages to ``irreps.gate_in``.
        self_connection: Species-dependent linear map of the input features, or
            None without the self-connection.
        irreps: The planned irreps of the layer.
        couplings: The message structure of the nonzero input irreps.
        radial_columns: Column of the radial MLP's output for each radial weight of
            ``couplings`` (the paths of zero input irreps are not used).
        avg_num_neighbors: Divides the sum over neighbours.
        num_species: Number of species.
        self_connection_scale: Factor of the self-connection's output
            (num_species^-1/2), or None for none.
        gate_activations: Names of the gate's even and odd activations.
    """

    linear_in: EquivariantLinear
    radial_mlp: UnnormalisedRadialMLP
    linear_out: EquivariantLinear
    self_connection: EquivariantLinear | None
    irreps: LayerIrreps = eqx.field(static=True)
    couplings: tuple[MessageCoupling, ...] = eqx.field(static=True)
    radial_columns: tuple[int, ...] = eqx.field(static=True)
    avg_num_neighbors: float = eqx.field(static=True)
    num_species: int = eqx.field(static=True)
    self_connection_scale: float | None = eqx.field(static=True)
    gate_activations: tuple[str, str] = eqx.field(static=True)

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
        self_connection: bool = True,
        self_connection_fan_in_species: bool = True,
        gate_activations: tuple[str, str] = ("swish", "tanh"),
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
        self_connection: Whether the layer has the self-connection.
        self_connection_fan_in_species: Whether the self-connection's output is
            also divided by sqrt(num_species) (the original library's 0.1).
        gate_activations: Names of the gate's even and odd activations (see
            ``ACTIVATIONS``).
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
        self.self_connection = (
            EquivariantLinear(
                irreps.nonzero_in,
                irreps.gate_in,
                dtype=dtype,
                key=self_key,
                num_species=num_species,
                force_irreps_out=True,
            )
            if self_connection
            else None
        )
        self.self_connection_scale = (
            num_species**-0.5 if self_connection_fan_in_species else None
        )
        self.gate_activations = tuple(gate_activations)

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
        self_connection = None
        if self.self_connection is not None:
            with jax.named_scope("self_connection"):
                self_connection = self.self_connection(node_features, node_species)
                if self.self_connection_scale is not None:
                    self_connection = self_connection * self.self_connection_scale
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
        if self_connection is not None:
            node_features = node_features + self_connection
        with jax.named_scope("gate"):
            even, odd = map(normalised_activation, self.gate_activations)
            gated = e3nn.gate(
                node_features,
                even_act=even,
                odd_act=odd,
                even_gate_act=even,
                odd_gate_act=odd,
                normalize_act=False,  # normalised once, above
            )
        return gated.filter(keep=self.irreps.nonzero_out)


@cache_per_precision(maxsize=16)
def normalised_activation(name: str) -> Callable[[Array], Array]:
    """e3nn's ``normalize_function`` of an activation (unit second moment under
    a standard normal input), as e3nn's ``gate`` normalises its activations.

    Computed once per name and precision: e3nn integrates numerically on every
    call, compiling small programs (2.5 s of every trace of a two-layer NequIP
    on CPU); the function returned is the one ``gate`` would build.
    """
    return e3nn.normalize_function(ACTIVATIONS[name])


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
