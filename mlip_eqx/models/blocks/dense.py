"""Dense (fully connected) layers on the last axis of plain arrays."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float

from mlip_eqx.models.initialisers import xavier_uniform


class Dense(eqx.Module):
    """``features @ weight + bias`` on the last axis; Xavier-uniform weights and
    zero bias at initialisation (flax's ``Dense`` with those initialisers).

    Attributes:
        weight: [fan_in, fan_out].
        bias: [fan_out], or None for a map without bias.
    """

    weight: Float[Array, "fan_in fan_out"]
    bias: Float[Array, " fan_out"] | None

    def __init__(
        self,
        fan_in: int,
        fan_out: int,
        *,
        use_bias: bool,
        dtype: DTypeLike,
        key: jax.Array,
    ):
        """Args:
        fan_in: Size of the input's last axis.
        fan_out: Size of the output's last axis.
        use_bias: Whether to add a (trainable) bias.
        dtype: Dtype of the parameters.
        key: Random key.
        """
        self.weight = xavier_uniform(key, (fan_in, fan_out), dtype)
        self.bias = jnp.zeros(fan_out, dtype) if use_bias else None

    def __call__(
        self, features: Float[Array, "*batch fan_in"]
    ) -> Float[Array, "*batch fan_out"]:
        """Maps the last axis of ``features``."""
        output = features @ self.weight
        return output if self.bias is None else output + self.bias

    def outputs(
        self, features: Float[Array, "*batch fan_in"], start: int, stop: int | None
    ) -> Float[Array, "*batch size"]:
        """Only the outputs ``start:stop`` of the map (``self(features)[...,
        start:stop]``, computed from those columns of the weight alone)."""
        output = features @ self.weight[:, start:stop]
        return output if self.bias is None else output + self.bias[start:stop]
