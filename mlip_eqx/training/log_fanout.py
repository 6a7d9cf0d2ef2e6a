"""The log records of a training run and their fan-out to the attached loggers."""

import enum
from collections.abc import Callable
from typing import Any

from mlip_eqx.training.distributed import is_primary_process

__all__ = ["LogCategory", "LogFanOut", "Logger"]


class LogCategory(enum.Enum):
    """What a record passed to the loggers (``fn(category, to_log, epoch)``) holds.

    Attributes:
        BEST_MODEL: Logged after every evaluation: ``{"best_loss": ...,
            "best_epoch": ...}``, the lowest validation loss so far and its epoch
            (a new best model is checkpointed at that point).
        TRAIN_METRICS: The training-set metrics of the epoch, each reduced over
            the epoch's steps as it declares (e.g. the loss over all structures).
        EVAL_METRICS: The validation-set metrics of the epoch (values of the
            whole set).
        TEST_METRICS: The test-set metrics of ``TrainingLoop.test()``.
        CLEANUP_AFTER_CKPT_RESTORATION: Logged once after a checkpoint was restored,
            with ``to_log = {}`` and the restored epoch as epoch number; loggers
            that keep records should drop those of later epochs (they belong to
            the run that is now being repeated).
        TRAINING_DECISION: A decision of the training protocol, logged at the
            epoch it takes effect: ``{"decision": "learning_rate_reduced",
            "learning_rate": ..., "previous_learning_rate": ...}`` (after that
            epoch's evaluation), ``{"decision": "stage_two_started",
            "energy_weight": ..., "forces_weight": ..., "learning_rate": ...}``
            (before that epoch's training) or ``{"decision": "early_stop",
            "best_epoch": ..., "best_loss": ...}`` (the run ends after that
            epoch). The training loop also logs each as a sentence.
    """

    BEST_MODEL = 0
    TRAIN_METRICS = 1
    EVAL_METRICS = 2
    TEST_METRICS = 3
    CLEANUP_AFTER_CKPT_RESTORATION = 4
    TRAINING_DECISION = 5


Logger = Callable[[LogCategory, dict[str, Any], int], None]


class LogFanOut:
    """Passes each record to every attached logger, in the order of attachment
    (in process 0 only, in a multi-process run); itself a :data:`Logger`."""

    def __init__(self) -> None:
        self._loggers: list[Logger] = []

    def attach(self, fn: Logger) -> None:
        """Adds a logger ``fn(category, to_log, epoch_number) -> None``."""
        self._loggers.append(fn)

    def __call__(
        self, category: LogCategory, to_log: dict[str, Any], epoch_number: int
    ) -> None:
        """Passes one record to every logger.

        Args:
            category: What the record holds (see :class:`LogCategory`).
            to_log: The metrics or other values, by name.
            epoch_number: The epoch the record belongs to.
        """
        if not is_primary_process():
            return
        for fn in self._loggers:
            fn(category, to_log, epoch_number)
