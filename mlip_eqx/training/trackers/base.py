"""What the experiment-tracker loggers share: the record-to-scalars mapping, the
lazy import of an optional extra and the close/context-manager protocol."""

import abc
import importlib
import logging
from types import ModuleType, TracebackType
from typing import Any

from mlip_eqx.training.training_io_handler import LogCategory
from mlip_eqx.training.training_loggers import to_python_scalar

logger = logging.getLogger("mlip_eqx")

# The prefix of a category's metrics in a tracker: ``train/loss``, ``validation/mae_f``.
CATEGORY_PREFIXES = {
    LogCategory.BEST_MODEL: "best_model",
    LogCategory.TRAIN_METRICS: "train",
    LogCategory.EVAL_METRICS: "validation",
    LogCategory.TEST_METRICS: "test",
    LogCategory.TRAINING_DECISION: "decision",
}


def import_extra(module_name: str, extra: str) -> ModuleType:
    """Imports a tracker's library, or says which extra of mlip_eqx installs it.

    Raises:
        ImportError: If ``module_name`` is not installed.
    """
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(
            f"The {extra} logger needs {module_name}, mlip_eqx's optional extra "
            f"'{extra}': pip install 'mlip_eqx[{extra}]'."
        ) from error


def tracker_scalars(category: LogCategory, to_log: dict[str, Any]) -> dict[str, float]:
    """A record's numbers named ``<category prefix>/<metric>`` (see
    ``CATEGORY_PREFIXES``), in the library's units (eV, eV/Å, eV/Å³) as in the
    record; values that are not single numbers (strings, arrays of several
    elements) are left out."""
    prefix = CATEGORY_PREFIXES[category]
    scalars = {}
    for name, value in to_log.items():
        value = to_python_scalar(value)
        if isinstance(value, int | float):
            scalars[f"{prefix}/{name}"] = float(value)
        else:
            logger.debug("Trackers log numbers only; %s/%s is left out.", prefix, name)
    return scalars


class AbstractTrackerLogger(abc.ABC):
    """A logger ``(category, to_log, epoch_number) -> None`` that sends records to
    an experiment tracker, each metric as ``<set>/<metric>`` (``train/loss``,
    ``validation/mae_f``, ``test/rmse_e``, ``best_model/best_loss``) at step =
    epoch, in the library's units (eV, eV/Å, eV/Å³).

    Attach it with ``io_handler.attach_logger(logger)`` and call ``close()`` when
    training and testing are done (or use it as a context manager, which marks the
    run as failed when the block raises). Logging after ``close()`` raises
    ``RuntimeError``.
    """

    _closed: bool = False

    def __call__(
        self, category: LogCategory, to_log: dict[str, Any], epoch_number: int
    ) -> None:
        """Sends the record's numbers, or, for CLEANUP_AFTER_CKPT_RESTORATION,
        tells the tracker that training continues after ``epoch_number``.

        Args:
            category: What the record holds.
            to_log: Metrics by name.
            epoch_number: The epoch of the record (the tracker's step).
        """
        if self._closed:
            raise RuntimeError(f"{type(self).__name__}: logging after close().")
        if category == LogCategory.CLEANUP_AFTER_CKPT_RESTORATION:
            self._restored(int(epoch_number))
        else:
            self._log(tracker_scalars(category, to_log), int(epoch_number))

    def close(self, failed: bool = False) -> None:
        """Writes what is pending and ends the run; a second call does nothing.

        Args:
            failed: Whether training stopped on an error (trackers that keep a run
                status record it as failed).
        """
        if not self._closed:
            self._closed = True
            self._finish(failed)

    def __enter__(self) -> "AbstractTrackerLogger":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(failed=exc_type is not None)

    @abc.abstractmethod
    def _log(self, scalars: dict[str, float], epoch_number: int) -> None:
        """Sends named numbers at step ``epoch_number``."""

    @abc.abstractmethod
    def _restored(self, epoch_number: int) -> None:
        """Training was restored from the checkpoint of ``epoch_number``; the
        epochs after it will be logged again."""

    @abc.abstractmethod
    def _finish(self, failed: bool) -> None:
        """Flushes and ends the run."""
