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
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    generator = np.random.default_rng(np.asarray(key, dtype=np.uint32).ravel())
    return jnp.asarray(std * generator.standard_normal(shape), dtype)
