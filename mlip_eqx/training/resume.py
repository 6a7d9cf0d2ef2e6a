"""resume: where a run starts, restored from its checkpoints or fresh."""

import logging

from mlip_eqx.checkpoint.format import CheckpointRestorationError
from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.training.checkpointer import Checkpointer
from mlip_eqx.training.fit import TrainingProgress, evaluation_params, initial_progress
from mlip_eqx.training.training_state import TrainingState

logger = logging.getLogger("mlip_eqx")

__all__ = ["resume"]


def resume(
    fresh: TrainingState,
    checkpointer: Checkpointer | None,
    dataset_info: DatasetInfo,
    use_ema_params_for_eval: bool = True,
) -> TrainingProgress:
    """The starting point of a run: its checkpoint, if the checkpointer's config
    asks to restore one and there is one, otherwise ``fresh`` at epoch 0.

    Opens the checkpointer's directory (see :meth:`Checkpointer.open`), checks
    that its ``dataset_info.json`` fits ``dataset_info`` (when restoring), restores
    the training state (all of it, or only the parameters, as configured) and the
    best model: the parameters of the restored epoch, of the untrained model
    (best epoch 0) or of the best epoch's checkpoint (always kept; if it cannot
    be read, the restored epoch's stand in, with a warning).

    Args:
        fresh: A new state of the model and optimizer (e.g.
            :func:`init_training_state`): the template of the restored arrays and
            the untrained model.
        checkpointer: The run's checkpoints (None: start fresh).
        dataset_info: The data set of this run.
        use_ema_params_for_eval: As ``TrainingLoopConfig.use_ema_params_for_eval``:
            whether the best model's parameters are the EMA ones.

    Returns:
        The state, the last completed epoch and the best model's parameters.

    Raises:
        DirectoryLockedError: If another process uses the directory.
        ExistingCheckpointsError: If it holds an earlier run's checkpoints that
            the config asks neither to resume nor to replace.
        IncompatibleCheckpointError: If the checkpoints are of another data set
            (other elements or cutoff).
        CheckpointRestorationError: If the asked checkpoint is missing, damaged or
            of another model or optimizer.
    """
    if checkpointer is None:
        return initial_progress(fresh, use_ema_params_for_eval)
    checkpointer.open()
    checkpointer.check_dataset_info(dataset_info)
    restored = checkpointer.restore_training_state(fresh)
    if restored is None:
        return initial_progress(fresh, use_ema_params_for_eval)
    state, epoch = restored
    logger.info("Resuming training after epoch %d.", epoch)
    best_epoch = int(state.best_model.epoch)
    if best_epoch == epoch:
        best_state = state
    elif best_epoch == 0:
        best_state = fresh
    else:
        try:
            best_state = checkpointer.restore_checkpoint(best_epoch, fresh)
        except CheckpointRestorationError as error:
            logger.warning(
                "The best model (epoch %d) cannot be restored (%s); the parameters "
                "of epoch %d stand in for it.",
                best_epoch,
                error,
                epoch,
            )
            best_state = state
    best_params = evaluation_params(best_state, use_ema_params_for_eval)
    return TrainingProgress(state, epoch, best_params)
