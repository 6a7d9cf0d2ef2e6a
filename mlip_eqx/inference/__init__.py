"""Using trained force fields: batched predictions and cached predictors."""

from mlip_eqx.inference.batched_inference import (
    StructurePrediction,
    predict_dataset,
    run_batched_inference,
)
from mlip_eqx.inference.predictor import make_node_energies_predictor, make_predictor

__all__ = [
    "StructurePrediction",
    "make_node_energies_predictor",
    "make_predictor",
    "predict_dataset",
    "run_batched_inference",
]
