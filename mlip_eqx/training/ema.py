"""Exponential moving average (EMA) of parameters, with bias correction.

The state holds the bias-corrected average itself, updated as
``average += (1 - decay) / (1 - decay**step) * (params - average)``: the same
numbers as dividing the plain average by ``1 - decay**step``, but exact for
parameters that do not change (frozen ones stay bit-identical in the average).

For code written for the original library, ``exponentially_moving_average(decay)``
gives the same ``init``/``update`` pair and :func:`get_debiased_params` the
average; its state held the plain (biased) average instead.
"""

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PyTree


class EMAState(eqx.Module):
    """Running average of the parameters, with its decay.

    Attributes:
        params_ema: The bias-corrected average (zeros before the first update,
            then the first parameters, ...).
        step: Number of updates so far.
        decay: The decay of the average (fixed when the state is made).
    """

    params_ema: PyTree
    step: Int[Array, ""]
    decay: float = eqx.field(static=True)


DEFAULT_EMA_DECAY = 0.99


def ema_init(params: PyTree, decay: float = DEFAULT_EMA_DECAY) -> EMAState:
    """An EMA state of zeros for ``params``.

    Args:
        params: The parameters to average (any PyTree of arrays).
        decay: The decay of the average; the default 0.99 is the original
            library's (``exponentially_moving_average(decay=0.99)``).

    Raises:
        ValueError: If ``decay`` is not in (0, 1).
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"The EMA decay must be in (0, 1), got {decay}.")
    return EMAState(
        params_ema=jax.tree.map(jnp.zeros_like, params),
        step=jnp.zeros((), jnp.int32),
        decay=decay,
    )


def ema_update(state: EMAState, params: PyTree) -> EMAState:
    """One EMA step of the bias-corrected average (see the module docstring)."""
    step = state.step + 1

    def updated(average: Array, new: Array) -> Array:
        # The weight in the parameter's own dtype (a float32 decay would make a
        # float64 average use 0.99000000954 for 0.99). Exactly 1 at the first
        # step: the average starts as the parameters.
        decay = jnp.asarray(state.decay, average.dtype)
        weight = jnp.where(step == 1, 1.0, (1.0 - decay) / (1.0 - decay**step))
        return average + weight.astype(average.dtype) * (new - average)

    params_ema = jax.tree.map(updated, state.params_ema, params)
    return EMAState(params_ema=params_ema, step=step, decay=state.decay)


def debiased_ema_params(state: EMAState) -> PyTree:
    """The bias-corrected average (what the state holds; zeros before the
    first update)."""
    return state.params_ema


def get_debiased_params(state: EMAState, decay: float | None = None) -> PyTree:
    """The bias-corrected average, as the original library's function of that name.

    Args:
        state: The EMA state.
        decay: Accepted for the original library's call
            ``get_debiased_params(state, decay)``; the state holds its decay, so
            None is enough. If given, it must be the state's.

    Raises:
        ValueError: If ``decay`` is not the state's decay.
    """
    if decay is not None and decay != state.decay:
        raise ValueError(
            f"get_debiased_params: decay={decay} is not the decay of this EMA "
            f"state ({state.decay}); the state keeps its decay, write "
            "get_debiased_params(state)."
        )
    return debiased_ema_params(state)


class EMAParameterTransformation(NamedTuple):
    """The ``init``/``update`` pair of an EMA of fixed decay (the original
    library's type of that name).

    Attributes:
        init: ``init(params) -> EMAState`` (zeros, step 0).
        update: ``update(state, params) -> EMAState`` (one step).
    """

    init: Callable[[PyTree], EMAState]
    update: Callable[[EMAState, PyTree], EMAState]


def exponentially_moving_average(
    decay: float = DEFAULT_EMA_DECAY,
) -> EMAParameterTransformation:
    """The EMA as an ``init``/``update`` pair, as the original library's function.

    ``ema = exponentially_moving_average(0.99); state = ema.init(params);
    state = ema.update(state, params)`` is :func:`ema_init` and :func:`ema_update`.
    Unlike the original's, the state holds the bias-corrected average (read it
    with :func:`get_debiased_params` or :func:`debiased_ema_params`).

    Args:
        decay: The decay of the average (default 0.99, the original's).

    Raises:
        ValueError: If ``decay`` is not in (0, 1).
    """
    ema_init({}, decay)  # checks the decay now, not at the first init
    return EMAParameterTransformation(
        init=lambda params: ema_init(params, decay), update=ema_update
    )


def biased_to_debiased(state: EMAState) -> EMAState:
    """An EMA state of checkpoints before format 3, which held the plain
    average, in this module's form (average / (1 - decay**step))."""

    def converted(average: Array) -> Array:
        decay = jnp.asarray(state.decay, average.dtype)
        correction = 1.0 - decay ** state.step.astype(average.dtype)
        return average / jnp.where(state.step > 0, correction, 1.0)

    params_ema = jax.tree.map(converted, state.params_ema)
    return EMAState(params_ema=params_ema, step=state.step, decay=state.decay)
