"""Spherical harmonics of edge directions and their parity."""

from typing import Literal

import e3nn_jax as e3nn
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float


def edge_harmonics(
    directions: Float[Array, "n_edge 3"],
    l_max: int,
    normalization: Literal["component", "norm"] = "component",
) -> Float[Array, "n_edge harmonics"]:
    """Spherical harmonics of degree 0..l_max of unit vectors.

    Args:
        directions: Vectors (any length but zero) whose directions are evaluated.
        l_max: Highest degree.
        normalization: e3nn's: "component" (each component has unit mean square
            over the sphere) or "norm" (the components of each degree form a unit
            vector).

    Returns:
        The (l_max + 1)^2 components of each direction, degree-major.
    """
    return e3nn.spherical_harmonics(
        list(range(l_max + 1)),
        e3nn.IrrepsArray("1o", directions),
        normalize=True,
        normalization=normalization,
    ).array


def parity_signs(l_max: int, dtype: DTypeLike) -> np.ndarray:
    """(-1)^l for every harmonic component of degree 0..l_max: Y(-r) = signs * Y(r).

    Args:
        l_max: Highest degree.
        dtype: Dtype of the result.

    Returns:
        The signs, [(l_max + 1)^2].
    """
    return np.concatenate(
        [np.full(2 * degree + 1, (-1.0) ** degree) for degree in range(l_max + 1)]
    ).astype(dtype)
