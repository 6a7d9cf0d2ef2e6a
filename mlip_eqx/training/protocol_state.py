"""The state of the training protocol: plateau and early-stopping counts, the
learning-rate factor and the stage of the run (part of the training state)."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


class ProtocolState(eqx.Module):
    """Where a run stands in its protocol (kept by the training loop, saved with
    the checkpoints, so that a resumed run takes the same decisions).

    Attributes:
        learning_rate_factor: Multiplies the learning rate of every update: the
            product of the reductions on validation plateaus (of the current
            stage); 1 before any.
        plateau_evaluations: Evaluations in a row without a new lowest
            validation loss since the last new lowest or reduction of the
            learning rate.
        evaluations_without_improvement: Evaluations in a row without a new
            lowest validation loss (early stopping).
        stage_two_start: The first epoch of the second stage; 0 while the run is
            in its first stage.
    """

    learning_rate_factor: Float[Array, ""]
    plateau_evaluations: Int[Array, ""]
    evaluations_without_improvement: Int[Array, ""]
    stage_two_start: Int[Array, ""]


def init_protocol_state() -> ProtocolState:
    """The state of a run before its first evaluation (factor 1, counts 0,
    first stage)."""
    # Separate arrays: a train step donates each buffer of the state once.
    return ProtocolState(
        learning_rate_factor=jnp.ones((), jnp.float32),
        plateau_evaluations=jnp.zeros((), jnp.int32),
        evaluations_without_improvement=jnp.zeros((), jnp.int32),
        stage_two_start=jnp.zeros((), jnp.int32),
    )
