"""Losses for training force fields, and evaluation metrics."""

from mlip_eqx.models.loss.loss import HuberLoss, Loss, MSELoss, WeightedEFSLoss
from mlip_eqx.models.loss.metrics import compute_eval_metrics

__all__ = ["HuberLoss", "Loss", "MSELoss", "WeightedEFSLoss", "compute_eval_metrics"]
