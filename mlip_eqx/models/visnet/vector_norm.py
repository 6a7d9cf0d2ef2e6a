"""Normalisations of ViSNet's vector features (no parameters), each degree on its
own, as mlip's ``VecLayerNorm``."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

# Added under the square roots and to the divisors, as in mlip.
EPSILON = 1e-12


def rms_norm(
    vectors: Float[Array, "n_node components channels"],
) -> Float[Array, "n_node components channels"]:
    """Divides the vectors of one degree by the root mean square over the
    channels of their norms (each norm taken as sqrt(|v|^2 + eps))."""
    norms = jnp.sqrt(jnp.sum(vectors**2, axis=1, keepdims=True) + EPSILON)
    norms = jnp.maximum(norms, EPSILON)
    scale = jnp.sqrt(jnp.mean(norms**2, axis=-1, keepdims=True))
    return vectors / jax.nn.relu(scale)


def max_min_norm(
    vectors: Float[Array, "n_node components channels"],
) -> Float[Array, "n_node components channels"]:
    """Rescales the norms of the vectors of one degree linearly so that, over the
    channels, the smallest becomes 0 and the largest 1; directions are kept."""
    norms = jnp.sqrt(jnp.sum(vectors**2, axis=1, keepdims=True) + EPSILON)
    directions = vectors / jnp.maximum(norms, EPSILON)
    largest = jnp.max(norms, axis=-1, keepdims=True)
    smallest = jnp.min(norms, axis=-1, keepdims=True)
    scaled = (norms - smallest) / (largest - smallest + EPSILON)
    return jax.nn.relu(scaled) * directions


_NORMS = {"rms": rms_norm, "max_min": max_min_norm}


def normalise_vectors(
    vectors: Float[Array, "n_node components channels"], norm_type: str
) -> Float[Array, "n_node components channels"]:
    """The vector features normalised degree by degree.

    Args:
        vectors: Components of degrees 1..l_max (3, 5, ... of them, degree-major)
            of every channel.
        norm_type: "none" (returns ``vectors``), "rms" or "max_min".

    Returns:
        The normalised vectors.
    """
    if norm_type == "none":
        return vectors
    norm = _NORMS[norm_type]
    blocks, start, degree = [], 0, 1
    while start < vectors.shape[1]:
        stop = start + 2 * degree + 1
        blocks.append(norm(vectors[:, start:stop]))
        start, degree = stop, degree + 1
    return jnp.concatenate(blocks, axis=1)
