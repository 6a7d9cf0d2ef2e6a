"""The best-model record: the lowest validation loss so far and its epoch."""

import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


class BestModelRecord(eqx.Module):
    """Which epoch gave the lowest validation loss so far.

    Attributes:
        loss: The lowest validation loss (inf before the first evaluation).
        epoch: Its epoch (0: the untrained model).
    """

    loss: Float[Array, ""]
    epoch: Int[Array, ""]


def init_best_model_record() -> BestModelRecord:
    """The record before any evaluation (loss inf)."""
    return BestModelRecord(
        loss=jnp.asarray(jnp.inf, jnp.float32), epoch=jnp.zeros((), jnp.int32)
    )


def update_best_model_record(
    record: BestModelRecord, validation_loss: float, epoch: int
) -> tuple[BestModelRecord, bool]:
    """The record after an evaluation, and whether that evaluation is the new best.

    A loss that is not finite never becomes the best.

    Args:
        record: The record so far.
        validation_loss: The validation loss of ``epoch``.
        epoch: The epoch just evaluated.
    """
    improved = math.isfinite(validation_loss) and validation_loss < float(record.loss)
    if not improved:
        return record, False
    return (
        BestModelRecord(
            loss=jnp.asarray(validation_loss, jnp.float32),
            epoch=jnp.asarray(epoch, jnp.int32),
        ),
        True,
    )
