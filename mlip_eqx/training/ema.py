"""Exponential moving average (EMA) of parameters, with bias correction."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PyTree


class EMAState(eqx.Module):
    """Running average of the parameters, with its decay.

    Attributes:
        params_ema: The biased average: starts at zero and approaches the parameters.
        step: Number of updates so far.
        decay: The decay of the average (fixed when the state is made).
    """

    params_ema: PyTree
    step: Int[Array, ""]
    decay: float = eqx.field(static=True)


def ema_init(params: PyTree, decay: float) -> EMAState:
    """An EMA state of zeros for ``params``.

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
    """One EMA step: average <- decay * average + (1 - decay) * params."""
    decay = state.decay
    params_ema = jax.tree.map(
        lambda average, new: decay * average + (1.0 - decay) * new,
        state.params_ema,
        params,
    )
    return EMAState(params_ema=params_ema, step=state.step + 1, decay=decay)


def debiased_ema_params(state: EMAState) -> PyTree:
    """The bias-corrected average, average / (1 - decay**step).

    Before the first update (step 0) this is the (zero) average itself.
    """
    correction = 1.0 - state.decay ** state.step.astype(jnp.float32)
    correction = jnp.where(state.step > 0, correction, 1.0)
    return jax.tree.map(
        lambda average: average / correction.astype(average.dtype), state.params_ema
    )
