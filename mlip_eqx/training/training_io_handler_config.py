"""TrainingIOHandlerConfig: where a run's checkpoints go and what is restored."""

import dataclasses
import os

from mlip_eqx.utils.config import Config, ConfigError, NonNegativeInt, PositiveInt


@dataclasses.dataclass(frozen=True)
class TrainingIOHandlerConfig(Config):
    """Settings of :class:`~mlip_eqx.training.training_io_handler.TrainingIOHandler`
    and of its :class:`~mlip_eqx.training.checkpointer.Checkpointer`.

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
            the run starts (the checkpointer opens the directory). Cannot be
            combined with ``restore_checkpoint_if_exists``.
    """

    local_model_output_dir: str | os.PathLike | None = None
    max_checkpoints_to_keep: PositiveInt = 5
    save_debiased_ema: bool = True
    restore_checkpoint_if_exists: bool = False
    epoch_to_restore: NonNegativeInt | None = None
    restore_optimizer_state: bool = False
    clear_previous_checkpoints: bool = False

    def __check_init__(self) -> None:
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
