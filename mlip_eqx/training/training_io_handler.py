"""TrainingIOHandler: checkpoints, the dataset info, remote sync and logger callbacks.

Layout of the output directory ``<dir>`` (``local_model_output_dir``)::

    <dir>/dataset_info.json          the DatasetInfo of the training set
    <dir>/model/<epoch>/             one Orbax checkpoint per saved epoch
        params/                      the trainable arrays (TrainingState.params)
        training_state/              every other array of the TrainingState
        params_ema/                  the debiased EMA parameters (if saved)
        layout/                      JSON: key path, shape and dtype of each array

Arrays are stored as flat lists; the layout records which array is which, so that
a checkpoint that does not fit a model is reported by key path before any array
is read. Orbax writes each checkpoint into ``<epoch>.orbax-checkpoint-tmp`` and
renames it to ``<epoch>`` once complete, and checkpoints are deleted by first
moving them into ``<dir>/model/.deleting/``; so a process killed at any moment
leaves every listed checkpoint complete, and a half-written one is never listed.
Leftovers of a killed process are removed by the next handler.
"""

import dataclasses
import enum
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jaxtyping import PyTree

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.training.ema import debiased_ema_params
from mlip_eqx.training.training_state import TrainingState
from mlip_eqx.utils.config import Config, ConfigError, NonNegativeInt, PositiveInt

logger = logging.getLogger("mlip_eqx")

MODEL_SUBDIR_NAME = "model"
DATASET_INFO_FILENAME = "dataset_info.json"
CHECKPOINT_FORMAT_VERSION = 1

# The items of one checkpoint (subdirectories of <dir>/model/<epoch>/).
PARAMS_ITEM = "params"
TRAINING_STATE_ITEM = "training_state"
PARAMS_EMA_ITEM = "params_ema"
LAYOUT_ITEM = "layout"

# Checkpoints are deleted by an (atomic) rename into this subdirectory of
# <dir>/model, then removed from there, so that a process killed while deleting
# never leaves a damaged checkpoint behind.
TRASH_SUBDIR_NAME = ".deleting"

DataUploadFun = Callable[[Path], Future | None]


class CheckpointRestorationError(ValueError):
    """A checkpoint cannot be restored: it is missing, not a checkpoint of this
    library, or does not fit the model (other config, elements or dtype)."""


class LogCategory(enum.Enum):
    """What a record passed to the loggers (``fn(category, to_log, epoch)``) holds.

    Attributes:
        BEST_MODEL: Logged after every evaluation: ``{"best_loss": ...,
            "best_epoch": ...}``, the lowest validation loss so far and its epoch
            (a new best model is checkpointed at that point).
        TRAIN_METRICS: The training-set metrics of the epoch (mean over its steps).
        EVAL_METRICS: The validation-set metrics of the epoch.
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


class TrainingIOHandler:
    """Checkpointing and logging for the training loop.

    Checkpoints are saved asynchronously: :meth:`save_checkpoint` returns once the
    arrays are copied to host memory and the files are written in the background.
    The upload function, if given, is called as ``data_upload_fun(output_dir)`` in
    the caller's thread for every checkpoint once it is complete on disk: at the
    first of the next :meth:`log` call that finds the save finished, the next
    :meth:`save_checkpoint`, or :meth:`wait_until_finished`. An upload function
    may work asynchronously by returning a ``concurrent.futures.Future``; it is
    waited for before the next upload and in :meth:`wait_until_finished`.
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
        self._upload_future: Future | None = None
        self._output_dir: Path | None = None
        self._manager: ocp.CheckpointManager | None = None
        if self.config.local_model_output_dir is not None:
            self._output_dir = Path(self.config.local_model_output_dir).resolve()
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
        """Passes a record to every attached logger, in the order of attachment.

        Also uploads a checkpoint whose asynchronous save has finished since the
        last call (without waiting for one still being written).

        Args:
            category: What the record holds (see :class:`LogCategory`).
            to_log: The metrics or other values, by name.
            epoch_number: The epoch the record belongs to.
        """
        for fn in self._loggers:
            fn(category, to_log, epoch_number)
        self._finish_save(block=False)

    def save_dataset_info(self, dataset_info: DatasetInfo) -> None:
        """Writes ``<output dir>/dataset_info.json`` (atomically); no-op without an
        output directory."""
        if self._output_dir is None:
            return
        self._output_dir.mkdir(parents=True, exist_ok=True)
        path = self._output_dir / DATASET_INFO_FILENAME
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            dataset_info.save_json(temporary)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

    def save_checkpoint(self, training_state: TrainingState, epoch_number: int) -> None:
        """Starts saving the training state as the checkpoint of ``epoch_number``.

        Returns once the arrays are copied to host memory (the state may then be
        donated to the next step); the files are written in the background. Waits
        for the previous save first. Existing checkpoints of epochs >=
        ``epoch_number`` (left by a run that went further, e.g. before an older
        epoch was restored) are deleted first; beyond ``max_checkpoints_to_keep``
        the oldest are deleted once the new one is complete. No-op without an
        output directory.

        Args:
            training_state: The state to save (with the debiased EMA parameters,
                if ``save_debiased_ema``).
            epoch_number: The epoch, used as the checkpoint's step number.
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
            trash = self.checkpoint_dir / TRASH_SUBDIR_NAME
            trash.mkdir(exist_ok=True)
            os.replace(self.checkpoint_dir / str(epoch), trash / str(epoch))
        if later:
            self._empty_trash()
            self._manager.reload()
        params, rest = _split_training_state(training_state)
        items = {
            PARAMS_ITEM: params,
            TRAINING_STATE_ITEM: rest,
        }
        if self.config.save_debiased_ema:
            ema_params = debiased_ema_params(training_state.ema_state)
            items[PARAMS_EMA_ITEM] = _flatten_with_keys(ema_params)
        layout = {"format_version": CHECKPOINT_FORMAT_VERSION} | {
            name: _layout_records(leaves) for name, leaves in items.items()
        }
        args = {
            name: ocp.args.StandardSave([leaf for _, leaf in leaves])
            for name, leaves in items.items()
        }
        logger.info("Saving the checkpoint of epoch %d.", epoch_number)
        self._manager.save(
            epoch_number,
            args=ocp.args.Composite(**args, **{LAYOUT_ITEM: ocp.args.JsonSave(layout)}),
        )
        self._upload_pending = True

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
        """
        if not self.config.restore_checkpoint_if_exists or self._manager is None:
            return None
        self._finish_save(block=True)
        epochs = self.saved_epochs()
        epoch = self.config.epoch_to_restore
        if epoch is None and not epochs:
            logger.info("No checkpoint in %s to restore.", self.checkpoint_dir)
            return None
        if epoch is None:
            epoch = epochs[-1]
        if epoch not in epochs:
            raise CheckpointRestorationError(
                f"No checkpoint of epoch {epoch} in {self.checkpoint_dir}; saved "
                f"epochs: {epochs or 'none'}."
            )
        start = time.perf_counter()
        params, rest = _split_training_state(template)
        restored = {PARAMS_ITEM: restore_checkpoint_item(self._manager, epoch, params)}
        if self.config.restore_optimizer_state:
            restored[TRAINING_STATE_ITEM] = restore_checkpoint_item(
                self._manager, epoch, rest, TRAINING_STATE_ITEM
            )
        state = _merge_training_state(template, restored)
        logger.info(
            "Restored the %s of epoch %d from %s in %.2f s.",
            "training state" if self.config.restore_optimizer_state else "parameters",
            epoch,
            self.checkpoint_dir,
            time.perf_counter() - start,
        )
        return state, epoch

    def _open_manager(self) -> ocp.CheckpointManager:
        checkpoint_dir = self.checkpoint_dir
        if self.config.clear_previous_checkpoints and checkpoint_dir.exists():
            logger.info("Deleting the previous checkpoints in %s.", checkpoint_dir)
            _remove_directory(checkpoint_dir)
        options = ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.LatestN(
                n=self.config.max_checkpoints_to_keep
            ),
            create=True,
            cleanup_tmp_directories=True,
            enable_async_checkpointing=True,
            todelete_subdir=TRASH_SUBDIR_NAME,
        )
        manager = ocp.CheckpointManager(checkpoint_dir, options=options)
        self._empty_trash()
        return manager

    def _empty_trash(self) -> None:
        trash = self.checkpoint_dir / TRASH_SUBDIR_NAME
        if trash.exists():
            shutil.rmtree(trash)

    def _finish_save(self, block: bool) -> None:
        """Uploads the last checkpoint once its save is complete; ``block`` waits
        for it, otherwise an unfinished save is left for a later call."""
        if not self._upload_pending:
            return
        if not block and self._manager.is_saving_in_progress():
            return
        self._upload_pending = False
        self._manager.wait_until_finished()
        self._empty_trash()
        if self._data_upload_fun is None:
            return
        if self._upload_future is not None:
            future, self._upload_future = self._upload_future, None
            future.result()
        logger.info("Uploading %s.", self._output_dir)
        result = self._data_upload_fun(self._output_dir)
        self._upload_future = result if isinstance(result, Future) else None


KeyedLeaves = list[tuple[str, Any]]


def _flatten_with_keys(tree: PyTree) -> KeyedLeaves:
    """The leaves of ``tree`` with their key paths (``jax.tree_util.keystr``)."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in leaves]


def _is_params_path(path: tuple) -> bool:
    return path[0] == jax.tree_util.GetAttrKey("params")


def _split_training_state(state: TrainingState) -> tuple[KeyedLeaves, KeyedLeaves]:
    """The keyed leaves of ``state.params`` (paths relative to the parameters,
    as for ``force_field.params``) and of the rest of the state."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(state)
    params = [
        (jax.tree_util.keystr(path[1:]), leaf)
        for path, leaf in leaves
        if _is_params_path(path)
    ]
    rest = [
        (jax.tree_util.keystr(path), leaf)
        for path, leaf in leaves
        if not _is_params_path(path)
    ]
    return params, rest


def _merge_training_state(
    template: TrainingState, restored: dict[str, list]
) -> TrainingState:
    """The template with the leaves of the restored items put in."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    sources = {
        PARAMS_ITEM: iter(restored.get(PARAMS_ITEM, ())),
        TRAINING_STATE_ITEM: iter(restored.get(TRAINING_STATE_ITEM, ())),
    }
    merged = []
    for path, leaf in leaves:
        item = PARAMS_ITEM if _is_params_path(path) else TRAINING_STATE_ITEM
        merged.append(next(sources[item]) if item in restored else leaf)
    return jax.tree_util.tree_unflatten(treedef, merged)


def _layout_records(leaves: KeyedLeaves) -> list[dict]:
    return [
        {"path": path, "shape": list(np.shape(leaf)), "dtype": str(leaf.dtype)}
        for path, leaf in leaves
    ]


def _sharding_of(leaf: Any) -> jax.sharding.Sharding:
    if isinstance(leaf, jax.Array):
        return leaf.sharding
    return jax.sharding.SingleDeviceSharding(jax.devices()[0])


def read_checkpoint_layout(manager: ocp.CheckpointManager, epoch: int) -> dict:
    """The layout record of a checkpoint: per item, the key path, shape and dtype
    of each array.

    Raises:
        CheckpointRestorationError: If the epoch has no checkpoint, or it was not
            written by :class:`TrainingIOHandler` (of a supported version).
    """
    where = f"{manager.directory}/{epoch}"
    epochs = sorted(manager.all_steps())
    if epoch not in epochs:
        raise CheckpointRestorationError(
            f"No checkpoint of epoch {epoch} in {manager.directory}; saved epochs: "
            f"{epochs or 'none'}."
        )
    try:
        layout = manager.restore(
            epoch, args=ocp.args.Composite(**{LAYOUT_ITEM: ocp.args.JsonRestore()})
        )[LAYOUT_ITEM]
    except (KeyError, FileNotFoundError, ValueError) as error:
        raise CheckpointRestorationError(
            f"{where} is not a checkpoint of a TrainingIOHandler: {error}"
        ) from error
    version = layout.get("format_version") if isinstance(layout, dict) else None
    if not isinstance(version, int) or version > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointRestorationError(
            f"{where}: checkpoint format version {version!r} is not supported "
            f"(this version of mlip_eqx reads up to {CHECKPOINT_FORMAT_VERSION})."
        )
    return layout


def restore_checkpoint_item(
    manager: ocp.CheckpointManager,
    epoch: int,
    template: Sequence[tuple[str, Any]],
    item: str = PARAMS_ITEM,
) -> list[jax.Array]:
    """The arrays of one item of a checkpoint, checked against a template.

    Args:
        manager: The Orbax manager of the checkpoint directory (``<dir>/model``).
        epoch: The epoch to read.
        template: ``(key path, array)`` of every expected array, e.g. from the
            parameters of the model; gives the order, shapes, dtypes and shardings.
        item: ``"params"``, ``"training_state"`` or ``"params_ema"``.

    Returns:
        The restored arrays, in the order of ``template``.

    Raises:
        CheckpointRestorationError: If the checkpoint lacks the item or any array
            of the template, has other arrays, or one of another shape or dtype.
    """
    where = f"{manager.directory}/{epoch}"
    layout = read_checkpoint_layout(manager, epoch)
    if item not in layout:
        hint = (
            " (saved with save_debiased_ema=False)" if item == PARAMS_EMA_ITEM else ""
        )
        raise CheckpointRestorationError(f"{where} has no {item!r}{hint}.")
    _check_layout(layout[item], template, f"{where} ({item})")
    expected = dict(template)
    abstract = [
        jax.ShapeDtypeStruct(
            tuple(record["shape"]),
            np.dtype(record["dtype"]),
            sharding=_sharding_of(expected[record["path"]]),
        )
        for record in layout[item]
    ]
    arrays = manager.restore(
        epoch, args=ocp.args.Composite(**{item: ocp.args.StandardRestore(abstract)})
    )[item]
    by_path = {record["path"]: a for record, a in zip(layout[item], arrays)}
    return [by_path[path] for path, _ in template]


def _check_layout(
    records: list[dict], template: Sequence[tuple[str, Any]], where: str
) -> None:
    saved = {record["path"]: record for record in records}
    expected = dict(template)
    missing = [path for path in expected if path not in saved]
    extra = [path for path in saved if path not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(
                f"{len(missing)} arrays of the model are not in the checkpoint "
                f"(first: {missing[0]})"
            )
        if extra:
            parts.append(
                f"{len(extra)} arrays of the checkpoint are not in the model "
                f"(first: {extra[0]})"
            )
        raise CheckpointRestorationError(
            f"{where} does not fit the model: {' and '.join(parts)}. Was it saved "
            "for another model config or optimizer?"
        )
    for path, leaf in template:
        shape, dtype = tuple(saved[path]["shape"]), saved[path]["dtype"]
        if shape != tuple(np.shape(leaf)):
            raise CheckpointRestorationError(
                f"{where} does not fit the model: array {path} has shape {shape} in "
                f"the checkpoint but {tuple(np.shape(leaf))} in the model (another "
                "model config or set of elements?)."
            )
        if dtype != str(leaf.dtype):
            raise CheckpointRestorationError(
                f"{where} does not fit the model: array {path} has dtype {dtype} in "
                f"the checkpoint but {leaf.dtype} in the model (saved with another "
                "jax_enable_x64 setting?)."
            )


def _remove_directory(path: Path) -> None:
    """Deletes a directory; renamed first, so that it disappears atomically."""
    doomed = path.with_name(f".{path.name}{TRASH_SUBDIR_NAME}")
    if doomed.exists():
        shutil.rmtree(doomed)
    os.replace(path, doomed)
    shutil.rmtree(doomed)
