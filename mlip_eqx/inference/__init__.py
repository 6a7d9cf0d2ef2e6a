"""Using trained force fields: batched predictions."""

from mlip_eqx.inference.batched_inference import (
    StructurePrediction,
    predict_dataset,
)

__all__ = ["StructurePrediction", "predict_dataset"]
