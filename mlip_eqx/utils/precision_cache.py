"""A cache for constants computed with JAX, kept apart per precision."""

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import jax

P = ParamSpec("P")
R = TypeVar("R")


def cache_per_precision(maxsize: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``functools.lru_cache`` whose key includes whether ``jax_enable_x64`` is on.

    Constants that e3nn-jax computes (tensor-product bases, Clebsch-Gordan
    couplings) come out in float32 while x64 is off. A plain cache would hand
    those float32-accurate values to a float64 model built later in the same
    process (a float64 conversion after a float32 training, or tests that turn
    x64 on and off), and the float64 model would be off by ~1e-8.
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.lru_cache(maxsize=maxsize)
        def cached(x64: bool, *args: P.args, **kwargs: P.kwargs) -> R:
            del x64  # part of the key only
            return function(*args, **kwargs)

        @functools.wraps(function)
        def per_precision(*args: P.args, **kwargs: P.kwargs) -> R:
            return cached(bool(jax.config.jax_enable_x64), *args, **kwargs)

        per_precision.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return per_precision

    return decorate
