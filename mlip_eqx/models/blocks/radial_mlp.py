"""The radial MLP: per-edge weights of the messages from the radial features."""

import e3nn_jax as e3nn
import equinox as eqx
import jax
from jax.typing import DTypeLike
from jaxtyping import Array, Float

from mlip_eqx.models.activations import ACTIVATIONS
from mlip_eqx.models.initialisers import normal


def radial_mlp(
    weights: tuple[Float[Array, "_ _"], ...],
    features: Float[Array, "n fan_in"],
    activation: str,
) -> Float[Array, "n fan_out"]:
    """Bias-free MLP with weights scaled by 1/sqrt(fan-in), applied to the last axis.

    Hidden layers use the activation normalised to unit second moment (e3nn's
    ``normalize_function``); the output layer is linear.

    Args:
        weights: One matrix per layer.
        features: Input, e.g. the radial embedding of each edge.
        activation: Name of the activation (see ``ACTIVATIONS``).

    Returns:
        The output of the last layer.
    """
    normalised = e3nn.normalize_function(ACTIVATIONS[activation])
    for index, weight in enumerate(weights):
        features = (features @ weight) * weight.shape[0] ** -0.5
        if index < len(weights) - 1:
            features = normalised(features)
    return features


class RadialMLP(eqx.Module):
    """:func:`radial_mlp` with weights ~ N(0, 1).

    Attributes:
        weights: One [fan_in, fan_out] matrix per layer.
        activation: Name of the activation of the hidden layers.
    """

    weights: tuple[Float[Array, "fan_in fan_out"], ...]
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        sizes: tuple[int, ...],
        activation: str,
        dtype: DTypeLike,
        key: jax.Array,
    ):
        """Args:
        sizes: Input size, hidden sizes and output size.
        activation: Name of the activation (see ``ACTIVATIONS``).
        dtype: Dtype of the weights.
        key: Random key.
        """
        keys = jax.random.split(key, len(sizes) - 1)
        self.weights = tuple(
            normal(k, (fan_in, fan_out), dtype)
            for k, fan_in, fan_out in zip(keys, sizes[:-1], sizes[1:])
        )
        self.activation = activation

    def __call__(self, features: Float[Array, "n fan_in"]) -> Float[Array, "n fan_out"]:
        """Applies the MLP to the last axis."""
        return radial_mlp(self.weights, features, self.activation)


def unnormalised_radial_mlp(
    weights: tuple[Float[Array, "_ _"], ...],
    features: Float[Array, "n fan_in"],
    activation: str,
) -> Float[Array, "n fan_out"]:
    """Bias-free MLP whose weights are used as they are, with the plain activation
    after each hidden layer (no normalisation) and a linear output layer.

    Args:
        weights: One matrix per layer.
        features: Input, e.g. the radial embedding of each edge.
        activation: Name of the activation (see ``ACTIVATIONS``).

    Returns:
        The output of the last layer.
    """
    function = ACTIVATIONS[activation]
    for index, weight in enumerate(weights):
        features = features @ weight
        if index < len(weights) - 1:
            features = function(features)
    return features


class UnnormalisedRadialMLP(eqx.Module):
    """:func:`unnormalised_radial_mlp` with fan-in scaled initial weights (NequIP's
    radial network in mlip 0.1): hidden layers ~ N(0, hidden_variance_scale /
    fan_in), the output layer ~ N(0, 1 / fan_in).

    Attributes:
        weights: One [fan_in, fan_out] matrix per layer.
        activation: Name of the activation of the hidden layers.
    """

    weights: tuple[Float[Array, "fan_in fan_out"], ...]
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        sizes: tuple[int, ...],
        activation: str,
        hidden_variance_scale: float,
        dtype: DTypeLike,
        key: jax.Array,
    ):
        """Args:
        sizes: Input size, hidden sizes and output size.
        activation: Name of the activation (see ``ACTIVATIONS``).
        hidden_variance_scale: Variance of the hidden layers' weights times their
            fan-in.
        dtype: Dtype of the weights.
        key: Random key.
        """
        num_layers = len(sizes) - 1
        keys = jax.random.split(key, num_layers)
        scales = (hidden_variance_scale,) * (num_layers - 1) + (1.0,)
        self.weights = tuple(
            normal(k, (fan_in, fan_out), dtype, (scale / fan_in) ** 0.5)
            for k, fan_in, fan_out, scale in zip(keys, sizes[:-1], sizes[1:], scales)
        )
        self.activation = activation

    def __call__(self, features: Float[Array, "n fan_in"]) -> Float[Array, "n fan_out"]:
        """Applies the MLP to the last axis."""
        return unnormalised_radial_mlp(self.weights, features, self.activation)
