"""TrainingIOHandler: checkpoint policy, the dataset info, remote sync and loggers.

The on-disk format (items, layout, atomic saves and deletions) lives in
:mod:`mlip_eqx.checkpoint.format`; this handler decides when to save, what to keep
and what to restore, uploads the output directory after each completed save, and
passes records to the user's loggers.
"""

import contextlib
import dataclasses
import enum
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import equinox as eqx
import orbax.checkpoint as ocp

from mlip_eqx.checkpoint.format import (
    DATASET_INFO_FILENAME,
    FIRST_VERSION_WITH_DEBIASED_EMA,
    MODEL_SUBDIR_NAME,
    PARAMS_ITEM,
    TRAINING_STATE_ITEM,
    VALIDATION_LOSS_METRIC,
    CheckpointCorruptedError,
    CheckpointRestorationError,
    check_dataset_info_matches,
    checkpoint_items,
    empty_trash,
    merge_state,
    open_checkpoint_manager,
    read_checkpoint_layout,
    remove_directory,
    restore_checkpoint_item,
    save_arguments,
    split_state,
)
from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.training.distributed import is_primary_process, sync_processes
from mlip_eqx.training.ema import biased_to_debiased, debiased_ema_params
from mlip_eqx.training.training_state import TrainingState
from mlip_eqx.utils.config import Config, ConfigError, NonNegativeInt, PositiveInt
from mlip_eqx.utils.directory_lock import DirectoryLockedError, lock_directory

logger = logging.getLogger("mlip_eqx")

__all__ = [
    "CheckpointCorruptedError",
    "CheckpointRestorationError",
    "CheckpointSaveError",
    "DirectoryLockedError",
    "ExistingCheckpointsError",
    "DataUploadFun",
    "LogCategory",
    "Logger",
    "TrainingIOHandler",
    "TrainingIOHandlerConfig",
]

DataUploadFun = Callable[[Path], Future | None]


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
    """

    BEST_MODEL = 0
    TRAIN_METRICS = 1
    EVAL_METRICS = 2
    TEST_METRICS = 3
    CLEANUP_AFTER_CKPT_RESTORATION = 4


Logger = Callable[[LogCategory, dict[str, Any], int], None]


@dataclasses.dataclass(frozen=True)
class TrainingIOHandlerConfig(Config):
    """Settings of :class:`TrainingIOHandler`.

    Attributes:
        local_model_output_dir: Output directory of the dataset info and the
            checkpoints (``<dir>/model/``); None disables checkpointing.
        max_checkpoints_to_keep: Number of most recent checkpoints kept on disk.
        save_debiased_ema: Also save the debiased EMA of the parameters.
        restore_checkpoint_if_exists: Restore a checkpoint of the output directory
            before training, if there is one.
        epoch_to_restore: The epoch to restore; None restores the latest.
        restore_optimizer_state: Restore the whole training state (optimizer state,
            EMA, step counter, random key, best-model record, extras); if False
            only the parameters are restored and the rest starts fresh.
        clear_previous_checkpoints: Delete ``<dir>/model/`` (all checkpoints) when
            the handler is created. Cannot be combined with
            ``restore_checkpoint_if_exists``.
    """

    local_model_output_dir: str | os.PathLike | None = None
    max_checkpoints_to_keep: PositiveInt = 5
    save_debiased_ema: bool = True
    restore_checkpoint_if_exists: bool = False
    epoch_to_restore: NonNegativeInt | None = None
    restore_optimizer_state: bool = False
    clear_previous_checkpoints: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        if self.restore_checkpoint_if_exists and self.clear_previous_checkpoints:
            raise ConfigError(
                f"{name}: restore_checkpoint_if_exists and clear_previous_checkpoints "
                "cannot both be True (the checkpoints to restore would be deleted)."
            )
        if self.restore_checkpoint_if_exists and self.local_model_output_dir is None:
            raise ConfigError(
                f"{name}.restore_checkpoint_if_exists needs local_model_output_dir "
                "(the directory to restore from)."
            )


class ExistingCheckpointsError(ValueError):
    """The output directory holds checkpoints of an earlier run, and the handler
    was asked neither to resume nor to replace them."""


class CheckpointSaveError(OSError):
    """A checkpoint could not be written (e.g. read-only directory, full disk)."""


class TrainingIOHandler:
    """Checkpointing and logging for the training loop.

    One process at a time uses an output directory: the handler locks it
    (``<dir>/.lock``) and another process's handler fails with
    :class:`DirectoryLockedError`. A directory that holds checkpoints of an
    earlier run is used only to resume them (``restore_checkpoint_if_exists``) or
    to replace them (``clear_previous_checkpoints``); otherwise the handler fails
    with :class:`ExistingCheckpointsError` before anything is written.

    :meth:`save_checkpoint` returns once the checkpoint is complete on disk; a
    failed save (read-only directory, full disk) raises :class:`CheckpointSaveError`
    at once, naming the directory, and leaves the earlier checkpoints intact.
    The upload function, if given, is called as ``data_upload_fun(output_dir)`` in
    the caller's thread once ``dataset_info.json`` is written and for every
    checkpoint once it is complete on disk: at the first
    :meth:`upload_completed_saves` (the training loop calls it after every epoch)
    that finds the save finished, the next :meth:`save_checkpoint`, or
    :meth:`wait_until_finished`. An upload function
    may work asynchronously by returning a ``concurrent.futures.Future``; it is
    waited for before the next upload and in :meth:`wait_until_finished`.

    In a multi-process run (``jax.distributed``) every process creates its
    handler with the same settings and calls the same methods: the checkpoints
    are saved and restored by all processes together (Orbax, which writes each
    array once), while only process 0 locks the directory, writes
    ``dataset_info.json``, deletes checkpoints, calls the upload function and
    passes records to the loggers. The output directory must be one shared file
    system seen by every process.
    """

    Config = TrainingIOHandlerConfig

    def __init__(
        self,
        config: TrainingIOHandlerConfig | None = None,
        data_upload_fun: DataUploadFun | None = None,
    ) -> None:
        """Args:
        config: The settings (default: ``TrainingIOHandler.Config()``, no
            checkpointing).
        data_upload_fun: Called with the local output directory after every
            completed checkpoint save, e.g. to sync it to remote storage.
        """
        self.config = config or TrainingIOHandlerConfig()
        self._data_upload_fun = data_upload_fun
        self._loggers: list[Logger] = []
        self._upload_pending = False
        self._saving_epoch = 0
        self._upload_future: Future | None = None
        self._output_dir: Path | None = None
        self._manager: ocp.CheckpointManager | None = None
        if self.config.local_model_output_dir is not None:
            self._output_dir = Path(self.config.local_model_output_dir).resolve()
            if is_primary_process():
                lock_directory(self._output_dir)
            self._refuse_to_replace_an_earlier_run()
            self._manager = self._open_manager()

    @property
    def output_dir(self) -> Path | None:
        """The local output directory, or None without checkpointing."""
        return self._output_dir

    @property
    def checkpoint_dir(self) -> Path | None:
        """``<output dir>/model``, the Orbax checkpoint directory, or None."""
        return (
            None if self._output_dir is None else self._output_dir / MODEL_SUBDIR_NAME
        )

    def attach_logger(self, fn: Logger) -> None:
        """Adds a logger ``fn(category, to_log, epoch_number) -> None``."""
        self._loggers.append(fn)

    def log(
        self, category: LogCategory, to_log: dict[str, Any], epoch_number: int
    ) -> None:
        """Passes a record to every attached logger, in the order of attachment
        (in process 0 only, in a multi-process run).

        Args:
            category: What the record holds (see :class:`LogCategory`).
            to_log: The metrics or other values, by name.
            epoch_number: The epoch the record belongs to.
        """
        if not is_primary_process():
            return
        for fn in self._loggers:
            fn(category, to_log, epoch_number)

    def save_dataset_info(self, dataset_info: DatasetInfo) -> None:
        """Writes ``<output dir>/dataset_info.json`` (atomically) and uploads the
        output directory; no-op without an output directory, and in processes
        other than 0."""
        if self._output_dir is None or not is_primary_process():
            return
        self._output_dir.mkdir(parents=True, exist_ok=True)
        dataset_info.save_json(self._output_dir / DATASET_INFO_FILENAME)
        self._upload()

    def check_resumable(self, dataset_info: DatasetInfo) -> None:
        """Fails before training if the run would resume from checkpoints of a data
        set with other elements or another cutoff (its ``dataset_info.json``).

        Raises:
            IncompatibleCheckpointError: Naming the differences.
        """
        if self.config.restore_checkpoint_if_exists and self._output_dir is not None:
            check_dataset_info_matches(self._output_dir, dataset_info)

    def save_checkpoint(
        self,
        training_state: TrainingState,
        epoch_number: int,
        validation_loss: float | None = None,
    ) -> None:
        """Saves the training state as the checkpoint of ``epoch_number``.

        Every array's CRC-32 checksum is recorded in the layout, so that a damaged
        checkpoint is detected when it is read. Existing checkpoints of epochs >=
        ``epoch_number`` (left by a run that went further, e.g. before an older
        epoch was restored) are deleted first; beyond ``max_checkpoints_to_keep``
        the oldest are deleted once the new one is complete, except the one with
        the lowest validation loss. No-op without an output directory.

        Args:
            training_state: The state to save (with the debiased EMA parameters,
                if ``save_debiased_ema``).
            epoch_number: The epoch, used as the checkpoint's step number.
            validation_loss: The validation loss of the saved parameters (None:
                unknown, never kept as the best).

        Raises:
            CheckpointSaveError: If this or the previous save failed (e.g. the
                directory became read-only or the disk is full); the earlier
                checkpoints are left intact.
        """
        if self._manager is None:
            return
        self._finish_save(block=True)
        later = [epoch for epoch in self._manager.all_steps() if epoch >= epoch_number]
        for epoch in later:
            logger.warning(
                "Deleting the checkpoint of epoch %d of an earlier run in %s.",
                epoch,
                self.checkpoint_dir,
            )
            self._manager.delete(epoch)
        self._empty_trash()
        ema_params = (
            debiased_ema_params(training_state.ema_state)
            if self.config.save_debiased_ema
            else None
        )
        items = checkpoint_items(training_state, ema_params)
        logger.info("Saving the checkpoint of epoch %d.", epoch_number)
        loss = math.inf if validation_loss is None else float(validation_loss)
        with self._save_errors(epoch_number):
            self._manager.save(
                epoch_number,
                args=save_arguments(items),
                metrics={VALIDATION_LOSS_METRIC: loss},
            )
        self._upload_pending = True
        self._saving_epoch = epoch_number

    @contextlib.contextmanager
    def _save_errors(self, epoch_number: int) -> Iterator[None]:
        """Turns any error of a save into a CheckpointSaveError naming the
        directory."""
        try:
            yield
        except Exception as error:
            self._upload_pending = False
            raise CheckpointSaveError(
                f"Saving the checkpoint of epoch {epoch_number} in "
                f"{self.checkpoint_dir} failed ({type(error).__name__}: "
                f"{str(error)[:300]}). Is the directory writable, and is there "
                f"free disk space? Earlier checkpoints are intact: "
                f"{self._intact_epochs()}."
            ) from error

    def _intact_epochs(self) -> list[int]:
        if self.checkpoint_dir is None or not self.checkpoint_dir.is_dir():
            return []
        return sorted(
            int(path.name)
            for path in self.checkpoint_dir.iterdir()
            if path.name.isdigit()
        )

    def upload_completed_saves(self) -> None:
        """Uploads the last checkpoint if its save has finished since the last
        upload (without waiting for one still being written)."""
        self._finish_save(block=False)

    def wait_until_finished(self) -> None:
        """Blocks until every checkpoint save and upload is complete.

        Raises:
            Exception: The error of a failed save or upload.
        """
        self._finish_save(block=True)
        if self._upload_future is not None:
            future, self._upload_future = self._upload_future, None
            future.result()

    def saved_epochs(self) -> list[int]:
        """The epochs with a checkpoint, ascending (including one whose save is
        still in progress; see :meth:`wait_until_finished`)."""
        if self._manager is None:
            return []
        return sorted(self._manager.all_steps())

    def latest_epoch(self) -> int | None:
        """The latest epoch with a checkpoint, or None."""
        epochs = self.saved_epochs()
        return epochs[-1] if epochs else None

    def restore_training_state(
        self, template: TrainingState
    ) -> tuple[TrainingState, int] | None:
        """The training state of a checkpoint, if the config asks to restore one.

        Restores ``epoch_to_restore``, or the latest epoch if that is None. The
        restored arrays get the shardings of the template's (e.g. replicated on
        the training mesh).

        Args:
            template: A state of the same model and optimizer (e.g. a fresh one);
                gives the structure, shapes, dtypes and shardings, and the arrays
                that are not restored (all but the parameters unless
                ``restore_optimizer_state``).

        Returns:
            ``(state, epoch)``, or None if restoring is off or there is no
            checkpoint yet (and no particular epoch was asked for).

        Raises:
            CheckpointRestorationError: If the asked epoch has no checkpoint, or the
                checkpoint does not fit the template (other model config,
                elements, optimizer or dtype).
            CheckpointCorruptedError: If the asked checkpoint, or every one, is
                damaged (without ``epoch_to_restore``, a damaged latest checkpoint
                is skipped with a warning and the newest intact one restored).
        """
        if not self.config.restore_checkpoint_if_exists or self._manager is None:
            return None
        self._finish_save(block=True)
        epochs = self.saved_epochs()
        epoch = self.config.epoch_to_restore
        if epoch is None and not epochs:
            logger.info("No checkpoint in %s to restore.", self.checkpoint_dir)
            return None
        if epoch is not None:
            if epoch not in epochs:
                raise CheckpointRestorationError(
                    f"No checkpoint of epoch {epoch} in {self.checkpoint_dir}; saved "
                    f"epochs: {epochs or 'none'}."
                )
            return self._restore(epoch, template), epoch
        # The latest intact checkpoint; a damaged one is skipped, saying so.
        newest_first = epochs[::-1]
        for candidate, older in zip(newest_first, [*newest_first[1:], None]):
            try:
                return self._restore(candidate, template), candidate
            except CheckpointCorruptedError as error:
                if older is None:
                    raise
                logger.warning(
                    "%s Resuming from the checkpoint of epoch %d instead.", error, older
                )

    def restore_checkpoint(self, epoch: int, template: TrainingState) -> TrainingState:
        """The whole training state of one epoch's checkpoint (e.g. to recover the
        best model's parameters after resuming from a later epoch).

        Raises:
            CheckpointRestorationError: As :meth:`restore_training_state`.
        """
        if self._manager is None:
            raise CheckpointRestorationError("The IO handler has no output directory.")
        self._finish_save(block=True)
        return self._restore(epoch, template, whole_state=True)

    def _restore(
        self, epoch: int, template: TrainingState, whole_state: bool | None = None
    ) -> TrainingState:
        if whole_state is None:
            whole_state = self.config.restore_optimizer_state
        start = time.perf_counter()
        params, rest = split_state(template)
        restored = {PARAMS_ITEM: restore_checkpoint_item(self._manager, epoch, params)}
        if whole_state:
            restored[TRAINING_STATE_ITEM] = restore_checkpoint_item(
                self._manager, epoch, rest, TRAINING_STATE_ITEM
            )
        state = merge_state(template, restored)
        version = read_checkpoint_layout(self._manager, epoch)["format_version"]
        if whole_state and version < FIRST_VERSION_WITH_DEBIASED_EMA:
            state = eqx.tree_at(
                lambda s: s.ema_state, state, biased_to_debiased(state.ema_state)
            )
        logger.info(
            "Restored the %s of epoch %d from %s in %.2f s.",
            "training state" if whole_state else "parameters",
            epoch,
            self.checkpoint_dir,
            time.perf_counter() - start,
        )
        return state

    def _refuse_to_replace_an_earlier_run(self) -> None:
        config = self.config
        if config.restore_checkpoint_if_exists or config.clear_previous_checkpoints:
            return
        earlier = self._intact_epochs()
        if earlier:
            raise ExistingCheckpointsError(
                f"{self.checkpoint_dir} holds the checkpoints of an earlier run "
                f"(epochs {earlier}). Resume it (restore_checkpoint_if_exists=True; "
                "mlip-eqx train --resume), replace it (clear_previous_checkpoints="
                "True; mlip-eqx train --overwrite) or choose another output "
                "directory."
            )

    def _open_manager(self) -> ocp.CheckpointManager:
        checkpoint_dir = self.checkpoint_dir
        # Every process has looked at the directory before process 0 changes it.
        sync_processes("mlip_eqx: checkpoint directory checked")
        if (
            self.config.clear_previous_checkpoints
            and checkpoint_dir.exists()
            and is_primary_process()
        ):
            logger.info("Deleting the previous checkpoints in %s.", checkpoint_dir)
            remove_directory(checkpoint_dir)
        sync_processes("mlip_eqx: previous checkpoints deleted")
        manager = open_checkpoint_manager(
            checkpoint_dir, max_to_keep=self.config.max_checkpoints_to_keep
        )
        self._empty_trash()
        return manager

    def _empty_trash(self) -> None:
        """Process 0 removes the checkpoints moved out for deletion (the others
        wait for it)."""
        if is_primary_process():
            empty_trash(self.checkpoint_dir)
        sync_processes("mlip_eqx: trash emptied")

    def _finish_save(self, block: bool) -> None:
        """Uploads the last checkpoint once its save is complete; ``block`` waits
        for it, otherwise an unfinished save is left for a later call."""
        if not self._upload_pending:
            return
        if not block and self._manager.is_saving_in_progress():
            return
        with self._save_errors(self._saving_epoch):
            self._manager.wait_until_finished()
        self._upload_pending = False
        self._empty_trash()
        self._upload()

    def _upload(self) -> None:
        """Calls the upload function on the output directory, after the previous
        upload has finished (process 0 only)."""
        if self._data_upload_fun is None or not is_primary_process():
            return
        if self._upload_future is not None:
            future, self._upload_future = self._upload_future, None
            future.result()
        logger.info("Uploading %s.", self._output_dir)
        result = self._data_upload_fun(self._output_dir)
        self._upload_future = result if isinstance(result, Future) else None
