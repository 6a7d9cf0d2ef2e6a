"""Checkpointer: when a run's checkpoints are saved, which are kept, what is restored.

The on-disk format (items, layout, atomic saves and deletions) lives in
:mod:`mlip_eqx.checkpoint.format`; this module is the policy over it, for one output
directory (``<dir>/model/`` and ``<dir>/dataset_info.json``).
"""

import contextlib
import logging
import math
import time
from collections.abc import Iterator
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
from mlip_eqx.training.training_io_handler_config import TrainingIOHandlerConfig
from mlip_eqx.training.training_state import TrainingState
from mlip_eqx.training.upload import Uploader
from mlip_eqx.utils.directory_lock import lock_directory

logger = logging.getLogger("mlip_eqx")

__all__ = ["CheckpointSaveError", "Checkpointer", "ExistingCheckpointsError"]


class ExistingCheckpointsError(ValueError):
    """The output directory holds checkpoints of an earlier run, and the run was
    asked neither to resume nor to replace them."""


class CheckpointSaveError(OSError):
    """A checkpoint could not be written (e.g. read-only directory, full disk)."""


class Checkpointer:
    """Saves, keeps and restores the training states of one output directory.

    Nothing is touched until the directory is opened (:meth:`open`, or the first
    call that reads or writes it). Opening locks the directory for this process
    (:class:`~mlip_eqx.utils.directory_lock.DirectoryLockedError` if another
    holds it), refuses the checkpoints of an earlier run unless the config asks
    to resume (``restore_checkpoint_if_exists``) or to replace them
    (``clear_previous_checkpoints``, which deletes them then), and opens the Orbax
    manager of ``<dir>/model``.

    :meth:`save` returns once the checkpoint is complete on disk; a failed save
    raises :class:`CheckpointSaveError` naming the directory and leaves the
    earlier checkpoints intact. After each completed save the output directory
    is uploaded (if an uploader is given): at the first
    :meth:`upload_completed_saves` that finds the save finished, the next
    :meth:`save`, or :meth:`wait_until_finished`.

    In a multi-process run every process makes the same calls: the checkpoints
    are saved and restored by all processes together, while only process 0
    locks the directory, writes ``dataset_info.json``, deletes checkpoints and
    uploads.
    """

    def __init__(
        self, config: TrainingIOHandlerConfig, uploader: Uploader | None = None
    ) -> None:
        """Args:
            config: The settings; ``local_model_output_dir`` is the directory.
            uploader: Uploads ``dataset_info.json`` once written and the output
                directory after every completed save (default: no uploads).

        Raises:
            ValueError: If ``config.local_model_output_dir`` is None.
        """
        if config.local_model_output_dir is None:
            raise ValueError(
                "A Checkpointer needs TrainingIOHandlerConfig.local_model_output_dir."
            )
        self.config = config
        self._uploader = uploader or Uploader(None)
        self._output_dir = Path(config.local_model_output_dir).resolve()
        self._manager: ocp.CheckpointManager | None = None
        self._upload_pending = False
        self._saving_epoch = 0

    @property
    def output_dir(self) -> Path:
        """The local output directory (absolute)."""
        return self._output_dir

    @property
    def checkpoint_dir(self) -> Path:
        """``<output dir>/model``, the Orbax checkpoint directory."""
        return self._output_dir / MODEL_SUBDIR_NAME

    def open(self) -> None:
        """Locks the directory, checks or clears earlier checkpoints as configured
        and opens the checkpoint manager; does nothing once open.

        Raises:
            DirectoryLockedError: If another process uses the directory.
            ExistingCheckpointsError: If it holds an earlier run's checkpoints
                and the config asks neither to resume nor to replace them.
        """
        if self._manager is not None:
            return
        if is_primary_process():
            lock_directory(self._output_dir)
        self._refuse_to_replace_an_earlier_run()
        # Every process has looked at the directory before process 0 changes it.
        sync_processes("mlip_eqx: checkpoint directory checked")
        if (
            self.config.clear_previous_checkpoints
            and self.checkpoint_dir.exists()
            and is_primary_process()
        ):
            logger.info("Deleting the previous checkpoints in %s.", self.checkpoint_dir)
            remove_directory(self.checkpoint_dir)
        sync_processes("mlip_eqx: previous checkpoints deleted")
        self._manager = open_checkpoint_manager(
            self.checkpoint_dir, max_to_keep=self.config.max_checkpoints_to_keep
        )
        self._empty_trash()

    def _opened(self) -> ocp.CheckpointManager:
        self.open()
        return self._manager

    def save_dataset_info(self, dataset_info: DatasetInfo) -> None:
        """Writes ``<output dir>/dataset_info.json`` (atomically) and uploads that
        file (process 0 only)."""
        self.open()
        if not is_primary_process():
            return
        path = self._output_dir / DATASET_INFO_FILENAME
        dataset_info.save_json(path)
        self._uploader.upload(path)

    def check_dataset_info(self, dataset_info: DatasetInfo) -> None:
        """Fails if the run would resume from checkpoints of a data set with other
        elements or another cutoff (its ``dataset_info.json``); no-op unless the
        config asks to restore.

        Raises:
            IncompatibleCheckpointError: Naming the differences.
        """
        if self.config.restore_checkpoint_if_exists:
            check_dataset_info_matches(self._output_dir, dataset_info)

    def save(
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
        the lowest validation loss.

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
        manager = self._opened()
        self._finish_save(block=True)
        for epoch in [epoch for epoch in manager.all_steps() if epoch >= epoch_number]:
            logger.warning(
                "Deleting the checkpoint of epoch %d of an earlier run in %s.",
                epoch,
                self.checkpoint_dir,
            )
            manager.delete(epoch)
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
            manager.save(
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
        if not self.checkpoint_dir.is_dir():
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
        self._uploader.wait()

    def saved_epochs(self) -> list[int]:
        """The epochs with a checkpoint, ascending (including one whose save is
        still in progress; see :meth:`wait_until_finished`)."""
        return sorted(self._opened().all_steps())

    def latest_epoch(self) -> int | None:
        """The latest epoch with a checkpoint, or None."""
        epochs = self.saved_epochs()
        return epochs[-1] if epochs else None

    def restore_training_state(
        self, template: TrainingState
    ) -> tuple[TrainingState, int] | None:
        """The training state of a checkpoint, if the config asks to restore one.

        Restores ``epoch_to_restore``, or the latest epoch if that is None (a
        damaged latest checkpoint is skipped with a warning and the newest intact
        one restored). The restored arrays get the shardings of the template's
        (e.g. replicated on the training mesh).

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
                damaged.
        """
        if not self.config.restore_checkpoint_if_exists:
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
        self._finish_save(block=True)
        return self._restore(epoch, template, whole_state=True)

    def _restore(
        self, epoch: int, template: TrainingState, whole_state: bool | None = None
    ) -> TrainingState:
        manager = self._opened()
        if whole_state is None:
            whole_state = self.config.restore_optimizer_state
        start = time.perf_counter()
        params, rest = split_state(template)
        restored = {PARAMS_ITEM: restore_checkpoint_item(manager, epoch, params)}
        if whole_state:
            restored[TRAINING_STATE_ITEM] = _restore_rest_of_state(manager, epoch, rest)
        state = merge_state(template, restored)
        version = read_checkpoint_layout(manager, epoch)["format_version"]
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
        self._uploader.upload(self._output_dir)


# The key path prefix of the protocol state, which earlier checkpoints lack.
_PROTOCOL_PATH = ".protocol."


def _restore_rest_of_state(
    manager: ocp.CheckpointManager, epoch: int, rest: list[tuple[str, Any]]
) -> list[Any]:
    """The arrays of the training state besides the parameters, in the order of
    ``rest``; a checkpoint saved before the training state had its ``protocol``
    gets the template's (a fresh protocol: factor 1, counts 0, first stage)."""
    layout = read_checkpoint_layout(manager, epoch)
    saved = {record["path"] for record in layout.get(TRAINING_STATE_ITEM, [])}
    missing = [path for path, _ in rest if path not in saved]
    if not missing or not all(path.startswith(_PROTOCOL_PATH) for path in missing):
        return restore_checkpoint_item(manager, epoch, rest, TRAINING_STATE_ITEM)
    present = [(path, leaf) for path, leaf in rest if path in saved]
    arrays = iter(restore_checkpoint_item(manager, epoch, present, TRAINING_STATE_ITEM))
    logger.info(
        "The checkpoint of epoch %d has no protocol state (saved by an earlier "
        "version); the run continues with a fresh one.",
        epoch,
    )
    return [next(arrays) if path in saved else leaf for path, leaf in rest]
