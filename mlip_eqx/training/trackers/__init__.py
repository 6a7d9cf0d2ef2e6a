"""Loggers for experiment trackers: TensorBoard (``tensorboardX``), Weights &
Biases (``wandb``) and MLflow (``mlflow-skinny``), each an optional extra
(``pip install 'mlip_eqx[tensorboard]'``, ``[wandb]``, ``[mlflow]``) imported
only when its logger is made.

Each logger is a callable ``(category, to_log, epoch_number) -> None`` to attach
with ``io_handler.attach_logger(...)``; close it (``close()`` or a ``with``
block) when training is done.
"""

from mlip_eqx.training.trackers.base import (
    CATEGORY_PREFIXES,
    AbstractTrackerLogger,
    tracker_scalars,
)
from mlip_eqx.training.trackers.factory import TrackerKind, make_tracker_logger
from mlip_eqx.training.trackers.mlflow_logger import MlflowLogger
from mlip_eqx.training.trackers.tensorboard_logger import TensorBoardLogger
from mlip_eqx.training.trackers.wandb_logger import WandbLogger

__all__ = [
    "CATEGORY_PREFIXES",
    "AbstractTrackerLogger",
    "MlflowLogger",
    "TensorBoardLogger",
    "TrackerKind",
    "WandbLogger",
    "make_tracker_logger",
    "tracker_scalars",
]
