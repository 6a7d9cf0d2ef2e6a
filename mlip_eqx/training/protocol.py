"""The training protocol's decisions after each evaluation: learning-rate
reduction on a validation plateau, early stopping and the start of the second
stage (host functions over the training state's
:class:`~mlip_eqx.training.protocol_state.ProtocolState`).

The decisions depend only on the state and the validation losses, so a run
resumed from a checkpoint takes the same decisions as an uninterrupted one.
"""

import logging
import math
from typing import Any

import equinox as eqx
import jax.numpy as jnp

from mlip_eqx.training.optimizer import get_learning_rate
from mlip_eqx.training.protocol_state import ProtocolState, init_protocol_state
from mlip_eqx.training.training_loop_config import TrainingLoopConfig
from mlip_eqx.training.training_state import TrainingState

logger = logging.getLogger("mlip_eqx")

__all__ = [
    "base_learning_rate",
    "check_protocol",
    "count_evaluation",
    "has_stopped",
    "in_stage_two",
    "reduce_on_plateau",
    "should_stop_early",
    "stage_two_due",
    "start_stage_two",
]


def in_stage_two(state: TrainingState) -> bool:
    """Whether the run of ``state`` is in its second stage."""
    return int(state.protocol.stage_two_start) > 0


def base_learning_rate(state: TrainingState, config: TrainingLoopConfig) -> float:
    """The learning rate before the plateau factor: the second stage's, or the
    optimizer's latest (its schedule's value at the last update).

    Raises:
        ValueError: If the optimizer does not record its learning rate.
    """
    if in_stage_two(state):
        return config.stage_two_learning_rate
    learning_rate = get_learning_rate(state.optimizer_state)
    if learning_rate is None:
        raise ValueError(
            "TrainingLoopConfig.lr_plateau_patience needs an optimizer that records "
            "its learning rate (optax.inject_hyperparams with a learning_rate, as "
            "get_default_mlip_optimizer)."
        )
    return float(learning_rate)


def check_protocol(config: TrainingLoopConfig, state: TrainingState) -> None:
    """Warns of a patience that the run cannot reach, and fails early for a
    plateau schedule that the optimizer cannot follow.

    Raises:
        ValueError: See :func:`base_learning_rate`.
    """
    evaluations = config.num_evaluations
    for name in ("lr_plateau_patience", "early_stopping_patience"):
        patience = getattr(config, name)
        # The first evaluation always sets a new lowest loss.
        if patience is not None and patience >= evaluations:
            logger.warning(
                "TrainingLoopConfig.%s is %d, but the run has only %d evaluations "
                "(%d epochs%s): it never takes effect.",
                name,
                patience,
                evaluations,
                config.num_epochs,
                " and epoch 0" if config.run_eval_at_start else "",
            )
    if config.lr_plateau_patience is not None:
        base_learning_rate(state, config)


def count_evaluation(protocol: ProtocolState, improved: bool) -> ProtocolState:
    """The counts after an evaluation that did (or did not) set a new lowest
    validation loss."""
    if improved:
        plateau = jnp.zeros_like(protocol.plateau_evaluations)
        without_improvement = jnp.zeros_like(protocol.evaluations_without_improvement)
    else:
        plateau = protocol.plateau_evaluations + 1
        without_improvement = protocol.evaluations_without_improvement + 1
    return eqx.tree_at(
        lambda p: (p.plateau_evaluations, p.evaluations_without_improvement),
        protocol,
        (plateau, without_improvement),
    )


def reduce_on_plateau(
    state: TrainingState, config: TrainingLoopConfig
) -> tuple[TrainingState, dict[str, Any] | None]:
    """Multiplies the learning rate by ``config.lr_plateau_factor`` (not below
    ``config.lr_plateau_min``) once ``config.lr_plateau_patience`` evaluations
    in a row have not improved, and counts the plateau again from 0.

    Returns:
        The state, and the decision (``{"decision": "learning_rate_reduced",
        "learning_rate": ..., "previous_learning_rate": ...}``), or None if the
        rate stays (no plateau, or already at the minimum).
    """
    patience = config.lr_plateau_patience
    protocol = state.protocol
    if patience is None or int(protocol.plateau_evaluations) < patience:
        return state, None
    base = base_learning_rate(state, config)
    factor = float(protocol.learning_rate_factor)
    previous = base * factor
    decision = None
    # At the minimum up to the rounding of the factor (kept in float32).
    if base > 0 and previous > config.lr_plateau_min * (1 + 1e-6):
        reduced = max(previous * config.lr_plateau_factor, config.lr_plateau_min)
        factor = reduced / base
        decision = {
            "decision": "learning_rate_reduced",
            "learning_rate": reduced,
            "previous_learning_rate": previous,
        }
    protocol = eqx.tree_at(
        lambda p: (p.learning_rate_factor, p.plateau_evaluations),
        protocol,
        (
            jnp.asarray(factor, protocol.learning_rate_factor.dtype),
            jnp.zeros_like(protocol.plateau_evaluations),
        ),
    )
    return eqx.tree_at(lambda s: s.protocol, state, protocol), decision


def should_stop_early(state: TrainingState, config: TrainingLoopConfig) -> bool:
    """Whether ``config.early_stopping_patience`` evaluations in a row have not
    improved."""
    patience = config.early_stopping_patience
    return patience is not None and (
        int(state.protocol.evaluations_without_improvement) >= patience
    )


def has_stopped(state: TrainingState, config: TrainingLoopConfig) -> bool:
    """Whether the run has ended early: the early-stopping patience is reached
    and no second stage is left to start instead."""
    stage_two_ahead = config.stage_two_epoch is not None and not in_stage_two(state)
    return should_stop_early(state, config) and not stage_two_ahead


def stage_two_due(state: TrainingState, config: TrainingLoopConfig, epoch: int) -> bool:
    """Whether the second stage starts before training ``epoch``: at
    ``config.stage_two_epoch``, or earlier once the first stage reaches the
    early-stopping patience."""
    if config.stage_two_epoch is None or in_stage_two(state):
        return False
    return epoch >= config.stage_two_epoch or should_stop_early(state, config)


def start_stage_two(state: TrainingState, epoch: int) -> TrainingState:
    """The state at the start of the second stage (before training ``epoch``).

    The second stage's loss has other weights, so its validation losses do not
    compare with the first stage's: the best-model record starts again (loss
    inf; its epoch, and so the best parameters until the first evaluation of
    the second stage, stay those of the first stage), as do the plateau and
    early-stopping counts and the learning-rate factor.
    """
    protocol = eqx.tree_at(
        lambda p: p.stage_two_start,
        init_protocol_state(),
        jnp.asarray(epoch, jnp.int32),
    )
    record = eqx.tree_at(
        lambda r: r.loss,
        state.best_model,
        jnp.asarray(math.inf, state.best_model.loss.dtype),
    )
    return eqx.tree_at(lambda s: (s.protocol, s.best_model), state, (protocol, record))
