"""Random initial parameters, drawn on the host from a JAX key."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike


def normal(
    key: jax.Array, shape: tuple[int, ...], dtype: DTypeLike, std: float = 1.0
) -> jax.Array:
    """Normally distributed array with mean 0 and standard deviation ``std``.

    Drawn with numpy from the key's bits: unlike ``jax.random.normal`` this compiles
    nothing per shape, which keeps building a model fast.

    Args:
        key: A JAX random key (typed or raw uint32); equal keys give equal arrays.
        shape: Shape of the array.
        dtype: Floating-point dtype of the array.
        std: Standard deviation.

    Returns:
        The array (on the default device).
    """
    return jnp.asarray(std * _generator(key).standard_normal(shape), dtype)


def xavier_uniform(
    key: jax.Array, shape: tuple[int, int], dtype: DTypeLike
) -> jax.Array:
    """Uniform in [-a, a] with a = sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio,
    2010), as flax's ``xavier_uniform`` for a [fan_in, fan_out] kernel.

    Args:
        key: A JAX random key (typed or raw uint32); equal keys give equal arrays.
        shape: (fan_in, fan_out).
        dtype: Floating-point dtype of the array.

    Returns:
        The array (on the default device).
    """
    fan_in, fan_out = shape
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    return jnp.asarray(_generator(key).uniform(-limit, limit, shape), dtype)


def _generator(key: jax.Array) -> np.random.Generator:
    """A numpy generator seeded with the key's bits."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng(np.asarray(key, dtype=np.uint32).ravel())
