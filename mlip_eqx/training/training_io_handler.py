"""TrainingIOHandler: the guide's facade over a run's checkpointer, uploads and loggers.

The pieces live in their own modules: the save/keep/restore policy in
:mod:`mlip_eqx.training.checkpointer` (over the on-disk format of
:mod:`mlip_eqx.checkpoint.format`), the remote sync in
:mod:`mlip_eqx.training.upload` and the fan-out of records to the user's loggers in
:mod:`mlip_eqx.training.log_fanout`. Their public names are importable from here too.
"""

from pathlib import Path
from typing import Any

from mlip_eqx.checkpoint.format import (
    MODEL_SUBDIR_NAME,
    CheckpointCorruptedError,
    CheckpointRestorationError,
)
from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.training.checkpointer import (
    Checkpointer,
    CheckpointSaveError,
    ExistingCheckpointsError,
)
from mlip_eqx.training.log_fanout import LogCategory, LogFanOut, Logger
from mlip_eqx.training.training_io_handler_config import TrainingIOHandlerConfig
from mlip_eqx.training.training_state import TrainingState
from mlip_eqx.training.upload import DataUploadFun, Uploader
from mlip_eqx.utils.directory_lock import DirectoryLockedError

__all__ = [
    "CheckpointCorruptedError",
    "CheckpointRestorationError",
    "CheckpointSaveError",
    "DataUploadFun",
    "DirectoryLockedError",
    "ExistingCheckpointsError",
    "LogCategory",
    "Logger",
    "TrainingIOHandler",
    "TrainingIOHandlerConfig",
]


class TrainingIOHandler:
    """Checkpointing, remote sync and logging for the training loop.

    Creating the handler touches no file. The output directory is opened when the
    run starts (the training loop's start, :meth:`open`, or the first method that
    reads or writes it): one process at a time uses it (``<dir>/.lock``; another
    process fails with :class:`DirectoryLockedError`), and one that holds the
    checkpoints of an earlier run is used only to resume them
    (``restore_checkpoint_if_exists``) or to replace them
    (``clear_previous_checkpoints``); otherwise :class:`ExistingCheckpointsError`
    is raised before anything is written. See
    :class:`~mlip_eqx.training.checkpointer.Checkpointer` for saving and restoring.

    The upload function, if given, is called in the caller's thread as mlip's is:
    ``data_upload_fun(<dir>/dataset_info.json)`` once that file is written, and
    ``data_upload_fun(<dir>)`` for every checkpoint once it is complete on disk
    (at the first :meth:`upload_completed_saves` that finds the save finished,
    the next :meth:`save_checkpoint`, or :meth:`wait_until_finished`). It may work
    asynchronously by returning a ``concurrent.futures.Future``, which is waited
    for before the next upload and in :meth:`wait_until_finished` (mlip does not
    wait for the future of the ``dataset_info.json`` upload; this handler does).

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
        data_upload_fun: Called with the path of ``dataset_info.json`` once it is
            written, and with the local output directory after every completed
            checkpoint save, e.g. to sync them to remote storage.
        """
        self.config = config or TrainingIOHandlerConfig()
        self._log = LogFanOut()
        self._checkpointer: Checkpointer | None = None
        if self.config.local_model_output_dir is not None:
            uploader = Uploader(data_upload_fun)
            self._checkpointer = Checkpointer(self.config, uploader)

    @property
    def checkpointer(self) -> Checkpointer | None:
        """The checkpointer of the output directory, or None without one."""
        return self._checkpointer

    @property
    def output_dir(self) -> Path | None:
        """The local output directory, or None without checkpointing."""
        return None if self._checkpointer is None else self._checkpointer.output_dir

    @property
    def checkpoint_dir(self) -> Path | None:
        """``<output dir>/model``, the Orbax checkpoint directory, or None."""
        output_dir = self.output_dir
        return None if output_dir is None else output_dir / MODEL_SUBDIR_NAME

    def open(self) -> None:
        """Opens the output directory now (see :meth:`Checkpointer.open`); no-op
        without one or once open.

        Raises:
            DirectoryLockedError: If another process uses the directory.
            ExistingCheckpointsError: If it holds an earlier run's checkpoints
                and the config asks neither to resume nor to replace them.
        """
        if self._checkpointer is not None:
            self._checkpointer.open()

    def attach_logger(self, fn: Logger) -> None:
        """Adds a logger ``fn(category, to_log, epoch_number) -> None``."""
        self._log.attach(fn)

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
        self._log(category, to_log, epoch_number)

    def save_dataset_info(self, dataset_info: DatasetInfo) -> None:
        """Writes ``<output dir>/dataset_info.json`` and uploads it; no-op
        without an output directory, and in processes other than 0."""
        if self._checkpointer is not None:
            self._checkpointer.save_dataset_info(dataset_info)

    def check_resumable(self, dataset_info: DatasetInfo) -> None:
        """Fails before training if the run would resume from checkpoints of a data
        set with other elements or another cutoff (its ``dataset_info.json``).

        Raises:
            IncompatibleCheckpointError: Naming the differences.
        """
        if self._checkpointer is not None:
            self._checkpointer.check_dataset_info(dataset_info)

    def save_checkpoint(
        self,
        training_state: TrainingState,
        epoch_number: int,
        validation_loss: float | None = None,
    ) -> None:
        """Saves the checkpoint of ``epoch_number`` (see :meth:`Checkpointer.save`);
        no-op without an output directory.

        Raises:
            CheckpointSaveError: If this or the previous save failed.
        """
        if self._checkpointer is not None:
            self._checkpointer.save(training_state, epoch_number, validation_loss)

    def upload_completed_saves(self) -> None:
        """Uploads the last checkpoint if its save has finished since the last
        upload (without waiting for one still being written)."""
        if self._checkpointer is not None:
            self._checkpointer.upload_completed_saves()

    def wait_until_finished(self) -> None:
        """Blocks until every checkpoint save and upload is complete.

        Raises:
            Exception: The error of a failed save or upload.
        """
        if self._checkpointer is not None:
            self._checkpointer.wait_until_finished()

    def saved_epochs(self) -> list[int]:
        """The epochs with a checkpoint, ascending."""
        return [] if self._checkpointer is None else self._checkpointer.saved_epochs()

    def latest_epoch(self) -> int | None:
        """The latest epoch with a checkpoint, or None."""
        return None if self._checkpointer is None else self._checkpointer.latest_epoch()

    def restore_training_state(
        self, template: TrainingState
    ) -> tuple[TrainingState, int] | None:
        """``(state, epoch)`` of the checkpoint the config asks to restore, or None
        (see :meth:`Checkpointer.restore_training_state`).

        Raises:
            CheckpointRestorationError: If the asked checkpoint is missing or does
                not fit the template.
        """
        if self._checkpointer is None:
            return None
        return self._checkpointer.restore_training_state(template)

    def restore_checkpoint(self, epoch: int, template: TrainingState) -> TrainingState:
        """The whole training state of one epoch's checkpoint.

        Raises:
            CheckpointRestorationError: Without an output directory, or as
                :meth:`restore_training_state`.
        """
        if self._checkpointer is None:
            raise CheckpointRestorationError("The IO handler has no output directory.")
        return self._checkpointer.restore_checkpoint(epoch, template)
