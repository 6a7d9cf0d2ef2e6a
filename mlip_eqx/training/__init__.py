"""Training: optimizer, training state, pure steps, training loop and IO."""

from mlip_eqx.training.ema import EMAState, debiased_ema_params
from mlip_eqx.training.optimizer import (
    get_default_mlip_optimizer,
    get_mlip_optimizer_chain_with_flexible_base_optimizer,
)
from mlip_eqx.training.optimizer_config import OptimizerConfig
from mlip_eqx.training.training_io_handler import (
    LogCategory,
    TrainingIOHandler,
    TrainingIOHandlerConfig,
)
from mlip_eqx.training.training_loop import TrainingLoop
from mlip_eqx.training.training_loop_config import TrainingLoopConfig
from mlip_eqx.training.training_state import TrainingState, init_training_state
from mlip_eqx.training.training_step import make_eval_step, make_train_step

__all__ = [
    "EMAState",
    "LogCategory",
    "OptimizerConfig",
    "TrainingIOHandler",
    "TrainingIOHandlerConfig",
    "TrainingLoop",
    "TrainingLoopConfig",
    "TrainingState",
    "debiased_ema_params",
    "get_default_mlip_optimizer",
    "get_mlip_optimizer_chain_with_flexible_base_optimizer",
    "init_training_state",
    "make_eval_step",
    "make_train_step",
]
