"""Training: optimizer, training state, pure steps, fit() and its pieces (checkpointer,
resume), and the guide's facades (TrainingLoop, TrainingIOHandler)."""

from mlip_eqx.training.best_model import BestModelRecord, update_best_model_record
from mlip_eqx.training.checkpointer import Checkpointer
from mlip_eqx.training.device_batches import DeviceBatch, device_batches
from mlip_eqx.training.ema import EMAState, debiased_ema_params
from mlip_eqx.training.fit import TrainingProgress, fit, initial_progress
from mlip_eqx.training.mesh import make_mesh, training_mesh
from mlip_eqx.training.optimizer import (
    get_default_mlip_optimizer,
    get_mlip_optimizer_chain_with_flexible_base_optimizer,
)
from mlip_eqx.training.optimizer_config import OptimizerConfig
from mlip_eqx.training.resume import resume
from mlip_eqx.training.training_io_handler import (
    LogCategory,
    TrainingIOHandler,
    TrainingIOHandlerConfig,
)
from mlip_eqx.training.training_loop import TrainingLoop, evaluate, train_epoch
from mlip_eqx.training.training_loop_config import TrainingLoopConfig
from mlip_eqx.training.training_state import TrainingState, init_training_state
from mlip_eqx.training.training_step import (
    apply_gradients,
    evaluation_metrics,
    loss_and_gradients,
    make_eval_step,
    make_train_step,
    shard_step,
)

__all__ = [
    "BestModelRecord",
    "Checkpointer",
    "DeviceBatch",
    "EMAState",
    "LogCategory",
    "OptimizerConfig",
    "TrainingIOHandler",
    "TrainingIOHandlerConfig",
    "TrainingLoop",
    "TrainingLoopConfig",
    "TrainingProgress",
    "TrainingState",
    "apply_gradients",
    "debiased_ema_params",
    "device_batches",
    "evaluate",
    "evaluation_metrics",
    "fit",
    "get_default_mlip_optimizer",
    "get_mlip_optimizer_chain_with_flexible_base_optimizer",
    "init_training_state",
    "initial_progress",
    "loss_and_gradients",
    "make_eval_step",
    "make_mesh",
    "make_train_step",
    "resume",
    "shard_step",
    "train_epoch",
    "training_mesh",
    "update_best_model_record",
]
