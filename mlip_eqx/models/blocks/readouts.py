"""Readouts: maps of the node features to per-node outputs (e.g. energies)."""

import e3nn_jax as e3nn
import equinox as eqx
import jax
from jax.typing import DTypeLike

from mlip_eqx.models.activations import ACTIVATIONS
from mlip_eqx.models.blocks.linear import EquivariantLinear


class LinearReadout(eqx.Module):
    """Linear map of the node features to the output irreps."""

    linear: EquivariantLinear

    def __init__(
        self,
        irreps_in: e3nn.Irreps,
        irreps_out: e3nn.Irreps,
        dtype: DTypeLike,
        key: jax.Array,
    ):
        """Args:
        irreps_in: Irreps of the node features.
        irreps_out: Irreps of the output.
        dtype: Dtype of the weights.
        key: Random key.
        """
        self.linear = EquivariantLinear(irreps_in, irreps_out, dtype=dtype, key=key)

    def __call__(self, node_features: e3nn.IrrepsArray) -> e3nn.IrrepsArray:
        """The output [n_node, irreps_out]."""
        return self.linear(node_features)


class NonLinearReadout(eqx.Module):
    """Linear, gated activation, linear (e.g. the readout of MACE's last layer)."""

    hidden: EquivariantLinear
    output: EquivariantLinear
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        irreps_in: e3nn.Irreps,
        hidden_irreps: e3nn.Irreps,
        irreps_out: e3nn.Irreps,
        activation: str,
        dtype: DTypeLike,
        key: jax.Array,
    ):
        """Args:
        irreps_in: Irreps of the node features.
        hidden_irreps: Irreps after the gate; scalars for the gates of the others
            are added to the first linear map's output.
        irreps_out: Irreps of the output.
        activation: Activation of the even scalars (see ``ACTIVATIONS``).
        dtype: Dtype of the weights.
        key: Random key.
        """
        hidden_key, output_key = jax.random.split(key)
        hidden_irreps = e3nn.Irreps(hidden_irreps)
        num_gates = hidden_irreps.filter(drop=["0e", "0o"]).num_irreps
        self.hidden = EquivariantLinear(
            irreps_in,
            (hidden_irreps + e3nn.Irreps(f"{num_gates}x0e")).simplify(),
            dtype=dtype,
            key=hidden_key,
        )
        # The gate's output irreps, from shapes alone (no computation to compile).
        gated = jax.eval_shape(
            lambda: e3nn.gate(e3nn.zeros(self.hidden.irreps_out, ()))
        ).irreps
        self.output = EquivariantLinear(gated, irreps_out, dtype=dtype, key=output_key)
        self.activation = activation

    def __call__(self, node_features: e3nn.IrrepsArray) -> e3nn.IrrepsArray:
        """The output [n_node, irreps_out]."""
        hidden = self.hidden(node_features)
        hidden = e3nn.gate(hidden, even_act=ACTIVATIONS[self.activation])
        return self.output(hidden)
