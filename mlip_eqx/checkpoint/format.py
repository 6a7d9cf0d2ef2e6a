"""The on-disk checkpoint format: items, layout records, state split and merge.

Layout of an output directory ``<dir>``::

    <dir>/dataset_info.json          the DatasetInfo of the training set
    <dir>/model/<epoch>/             one Orbax checkpoint per saved epoch
        params/                      the trainable arrays (TrainingState.params)
        training_state/              every other array of the TrainingState
        params_ema/                  the debiased EMA parameters (if saved)
        layout/                      JSON: key path, shape, dtype and CRC-32
                                     checksum of each array
        metrics/                     JSON: the validation loss of the epoch
    <dir>/.lock                      held by the process that uses <dir>

Arrays are stored as flat lists; the layout records which array is which, so that
a checkpoint that does not fit a model is reported by key path before any array
is read, and a damaged one (a changed bit, a missing or truncated file) is reported
as :class:`CheckpointCorruptedError` naming the checkpoint and the array.
Orbax writes each checkpoint into ``<epoch>.orbax-checkpoint-tmp`` and
renames it to ``<epoch>`` once complete, and deletes checkpoints by first moving
them into ``<dir>/model/.deleting/``; so a process killed at any moment leaves
every listed checkpoint complete, and a half-written one is never listed.

This module knows nothing of models or training: a state is any PyTree whose
``params`` attribute holds the trainable arrays (``TrainingState``).
"""

import math
import os
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jaxtyping import PyTree

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.utils.trees import flatten_with_key_paths

MODEL_SUBDIR_NAME = "model"
DATASET_INFO_FILENAME = "dataset_info.json"
# Version 2 adds the checksums; version 1 checkpoints are read without checking.
# Version 3: the training state's EMA holds the bias-corrected average (before:
# the plain one, converted when restored).
CHECKPOINT_FORMAT_VERSION = 3
FIRST_VERSION_WITH_DEBIASED_EMA = 3

# The items of one checkpoint (subdirectories of <dir>/model/<epoch>/).
PARAMS_ITEM = "params"
TRAINING_STATE_ITEM = "training_state"
PARAMS_EMA_ITEM = "params_ema"
LAYOUT_ITEM = "layout"

# The metric saved with every checkpoint; the best one is always kept.
VALIDATION_LOSS_METRIC = "validation_loss"

# Checkpoints are deleted by an (atomic) rename into this subdirectory of
# <dir>/model, then removed from there.
TRASH_SUBDIR_NAME = ".deleting"

KeyedLeaves = list[tuple[str, Any]]


class CheckpointRestorationError(ValueError):
    """A checkpoint cannot be restored: it is missing, not a checkpoint of this
    library, or does not fit the model (other config, elements or dtype)."""


class CheckpointCorruptedError(CheckpointRestorationError):
    """A checkpoint's files are damaged: missing, truncated or changed since they
    were written (checksum mismatch)."""


class IncompatibleCheckpointError(ValueError):
    """A checkpoint to resume from was made for another model or data set."""


def _is_params_path(path: tuple) -> bool:
    return path[0] == jax.tree_util.GetAttrKey(PARAMS_ITEM)


def split_state(state: PyTree) -> tuple[KeyedLeaves, KeyedLeaves]:
    """The keyed leaves of ``state.params`` (paths relative to the parameters, as
    for ``force_field.params``) and of the rest of the state."""
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


def merge_state(template: PyTree, restored: dict[str, list]) -> PyTree:
    """The template with the leaves of the restored items put in (items that
    were not restored keep the template's leaves)."""
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


def checkpoint_items(
    state: PyTree, ema_params: PyTree | None = None
) -> dict[str, KeyedLeaves]:
    """The arrays of one checkpoint, by item: the parameters, the rest of the
    state and, if given, the (debiased) EMA parameters."""
    params, rest = split_state(state)
    items = {PARAMS_ITEM: params, TRAINING_STATE_ITEM: rest}
    if ema_params is not None:
        items[PARAMS_EMA_ITEM] = flatten_with_key_paths(ema_params)
    return items


def array_checksum(array: Any) -> int:
    """CRC-32 of an array's bytes (C order), e.g. to detect a damaged file."""
    return zlib.crc32(np.ascontiguousarray(np.asarray(array)).tobytes())


def _layout_records(leaves: KeyedLeaves) -> list[dict]:
    return [
        {
            "path": path,
            "shape": list(np.shape(leaf)),
            "dtype": str(leaf.dtype),
            "crc32": array_checksum(leaf),
        }
        for path, leaf in leaves
    ]


def save_arguments(items: dict[str, KeyedLeaves]) -> ocp.args.Composite:
    """The Orbax arguments that save ``items`` and their layout record."""
    layout = {"format_version": CHECKPOINT_FORMAT_VERSION} | {
        name: _layout_records(leaves) for name, leaves in items.items()
    }
    arrays = {
        name: ocp.args.StandardSave([leaf for _, leaf in leaves])
        for name, leaves in items.items()
    }
    return ocp.args.Composite(**arrays, **{LAYOUT_ITEM: ocp.args.JsonSave(layout)})


def _validation_loss_rank(metrics: dict) -> float:
    """The validation loss saved with a checkpoint; non-finite ranks last."""
    loss = float(metrics.get(VALIDATION_LOSS_METRIC, math.inf))
    return loss if math.isfinite(loss) else math.inf


def open_checkpoint_manager(
    directory: Path,
    max_to_keep: int | None = None,
    create: bool = True,
) -> ocp.CheckpointManager:
    """The Orbax manager of ``<dir>/model`` with this format's options: atomic
    saves and deletions (through ``.deleting/``), synchronous saving (Orbax's
    asynchronous saves leave non-daemon threads waiting for up to its coordination
    timeout when a save fails, so a failed run would not exit), and the
    latest ``max_to_keep`` checkpoints (None: all) plus the one with the lowest
    validation loss (saved as the metric ``"validation_loss"``)."""
    policies = ocp.checkpoint_managers
    options = ocp.CheckpointManagerOptions(
        preservation_policy=(
            None
            if max_to_keep is None
            else policies.AnyPreservationPolicy(
                [
                    policies.LatestN(n=max_to_keep),
                    policies.BestN(
                        get_metric_fn=_validation_loss_rank, reverse=True, n=1
                    ),
                ]
            )
        ),
        # Setting best_fn makes Orbax write the metrics with each checkpoint
        # (and read them back), so that the best one stays known after a restart.
        best_fn=_validation_loss_rank,
        best_mode="min",
        create=create,
        cleanup_tmp_directories=create,
        enable_async_checkpointing=False,
        todelete_subdir=TRASH_SUBDIR_NAME,
    )
    return ocp.CheckpointManager(directory, options=options)


def empty_trash(checkpoint_dir: Path) -> None:
    """Removes the checkpoints that were moved out of the listing for deletion."""
    trash = checkpoint_dir / TRASH_SUBDIR_NAME
    if trash.exists():
        shutil.rmtree(trash)


def remove_directory(path: Path) -> None:
    """Deletes a directory; renamed first, so that it disappears atomically."""
    doomed = path.with_name(f".{path.name}{TRASH_SUBDIR_NAME}")
    if doomed.exists():
        shutil.rmtree(doomed)
    os.replace(path, doomed)
    shutil.rmtree(doomed)


def _sharding_of(leaf: Any) -> jax.sharding.Sharding:
    if isinstance(leaf, jax.Array):
        return leaf.sharding
    return jax.sharding.SingleDeviceSharding(jax.devices()[0])


def read_checkpoint_layout(manager: ocp.CheckpointManager, epoch: int) -> dict:
    """The layout record of a checkpoint: per item, the key path, shape and dtype
    of each array.

    Raises:
        CheckpointRestorationError: If the epoch has no checkpoint, or it was not
            written in this format (of a supported version).
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
    try:
        arrays = manager.restore(
            epoch,
            args=ocp.args.Composite(**{item: ocp.args.StandardRestore(abstract)}),
        )[item]
    except Exception as error:  # TensorStore and Orbax raise many kinds
        raise CheckpointCorruptedError(
            f"{where}/{item} cannot be read (a file is missing or damaged): "
            f"{type(error).__name__}: {str(error)[:300]}"
        ) from error
    for record, array in zip(layout[item], arrays):
        if "crc32" in record and array_checksum(array) != record["crc32"]:
            raise CheckpointCorruptedError(
                f"{where}/{item}: array {record['path']} does not match the checksum "
                "written with it; the checkpoint is damaged."
            )
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


def check_dataset_info_matches(output_dir: Path, dataset_info: DatasetInfo) -> None:
    """Fails if ``<dir>/dataset_info.json`` exists and was written for a data set
    with other elements or another cutoff than ``dataset_info``.

    Raises:
        IncompatibleCheckpointError: Naming each difference.
    """
    path = output_dir / DATASET_INFO_FILENAME
    if not path.exists():
        return
    saved = DatasetInfo.load_json(path)
    problems = []
    if saved.allowed_atomic_numbers != dataset_info.allowed_atomic_numbers:
        problems.append(
            f"elements {saved.allowed_atomic_numbers} in the checkpoint, "
            f"{dataset_info.allowed_atomic_numbers} now"
        )
    if saved.cutoff_distance_angstrom != dataset_info.cutoff_distance_angstrom:
        problems.append(
            f"cutoff {saved.cutoff_distance_angstrom} Å in the checkpoint, "
            f"{dataset_info.cutoff_distance_angstrom} Å now"
        )
    if problems:
        raise IncompatibleCheckpointError(
            f"Cannot resume from {output_dir}: the checkpoint was made for another "
            "data set (" + "; ".join(problems) + ")."
        )
