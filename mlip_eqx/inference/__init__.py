"""Using trained force fields: batched predictions and cached predictors."""

from mlip_eqx.inference.batched_inference import (
    StructurePrediction,
    predict_dataset,
)
from mlip_eqx.inference.predictor import make_predictor

__all__ = ["StructurePrediction", "make_predictor", "predict_dataset"]
