"""Model parameters from a checkpoint written by TrainingIOHandler."""

import os
from pathlib import Path

import jax
from jaxtyping import PyTree

from mlip_eqx.checkpoint.format import (
    MODEL_SUBDIR_NAME,
    PARAMS_EMA_ITEM,
    PARAMS_ITEM,
    open_checkpoint_manager,
    restore_checkpoint_item,
)
from mlip_eqx.utils.trees import flatten_with_key_paths


def load_parameters_from_checkpoint(
    local_checkpoint_dir: str | os.PathLike,
    initial_params: PyTree,
    epoch_to_load: int,
    load_ema_params: bool = False,
) -> PyTree:
    """The parameters of one epoch's checkpoint.

    Use them with ``force_field.with_params(params)``.

    Args:
        local_checkpoint_dir: The IO handler's output directory
            (``local_model_output_dir``) or its ``model`` subdirectory, which holds
            one directory per saved epoch.
        initial_params: Parameters of the same model (e.g. ``force_field.params``
            of a freshly built force field); give the structure, shapes, dtypes
            and the devices of the result.
        epoch_to_load: The epoch of the checkpoint.
        load_ema_params: Load the debiased EMA of the parameters instead of the
            parameters themselves.

    Returns:
        A PyTree with the structure of ``initial_params``.

    Raises:
        FileNotFoundError: If the directory does not exist.
        CheckpointRestorationError: (a ValueError) If the epoch has no checkpoint
            (the message lists the saved ones), the checkpoint has no EMA
            parameters but they were asked for, or the checkpoint does not fit
            ``initial_params`` (another model config, elements or dtype).
    """
    manager = open_checkpoint_manager(
        _model_directory(local_checkpoint_dir), create=False
    )
    item = PARAMS_EMA_ITEM if load_ema_params else PARAMS_ITEM
    try:
        arrays = restore_checkpoint_item(
            manager, epoch_to_load, flatten_with_key_paths(initial_params), item
        )
    finally:
        manager.close()
    return jax.tree.unflatten(jax.tree.structure(initial_params), arrays)


def saved_epochs(local_checkpoint_dir: str | os.PathLike) -> list[int]:
    """The epochs with a checkpoint, sorted (see
    :func:`load_parameters_from_checkpoint` for the directory).

    Raises:
        FileNotFoundError: If the directory does not exist.
    """
    manager = open_checkpoint_manager(
        _model_directory(local_checkpoint_dir), create=False
    )
    try:
        return sorted(manager.all_steps())
    finally:
        manager.close()


def _model_directory(local_checkpoint_dir: str | os.PathLike) -> Path:
    """The directory of the epochs' checkpoints: ``model/`` of an output
    directory, or the given one."""
    directory = Path(local_checkpoint_dir).resolve()
    if (directory / MODEL_SUBDIR_NAME).is_dir():
        directory = directory / MODEL_SUBDIR_NAME
    if not directory.is_dir():
        raise FileNotFoundError(f"No checkpoint directory {directory}.")
    return directory
