"""Activation functions selectable by name in model configs."""

from collections.abc import Callable
from typing import Literal

import jax

ActivationName = Literal["silu", "elu", "relu", "tanh", "sigmoid", "swish"]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "silu": jax.nn.silu,
    "elu": jax.nn.elu,
    "relu": jax.nn.relu,
    "tanh": jax.nn.tanh,
    "sigmoid": jax.nn.sigmoid,
    "swish": jax.nn.swish,
}
