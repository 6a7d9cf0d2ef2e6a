"""Predictions of a force field for every structure of a GraphDataset."""

import dataclasses

import jax
import numpy as np

from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.inference.predictor import make_predictor
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.utils.progress import track


@dataclasses.dataclass(frozen=True)
class StructurePrediction:
    """Prediction and reference labels of one structure (numpy, host).

    Attributes:
        num_atoms: Number of atoms.
        energy: Predicted energy in eV.
        forces: Predicted forces in eV/Å, [num_atoms, 3].
        stress: Predicted stress in eV/Å³, [3, 3], or None if not predicted.
        reference_energy: Label in eV, or None if the structure has none.
        reference_forces: Labels in eV/Å, or None.
        reference_stress: Label in eV/Å³, or None.
    """

    num_atoms: int
    energy: float
    forces: np.ndarray
    stress: np.ndarray | None
    reference_energy: float | None
    reference_forces: np.ndarray | None
    reference_stress: np.ndarray | None


def predict_dataset(
    force_field: ForceField, dataset: GraphDataset
) -> list[StructurePrediction]:
    """Runs the force field over every batch of ``dataset``.

    The prediction compiles once per batch shape of the dataset.

    Returns:
        One StructurePrediction per structure, in the dataset's order
        (``dataset.graphs``).
    """
    predict = make_predictor(force_field)
    results: list[StructurePrediction | None] = [None] * len(dataset.graphs)
    batches = zip(dataset.iter_batches(0), dataset.batch_indices(0), strict=True)
    for batch, indices in track(batches, "Predicting", total=dataset.num_batches()):
        prediction = jax.device_get(predict(batch))
        node_start = 0
        for index, graph in zip(indices, np.flatnonzero(batch.graph_mask), strict=True):
            count = int(batch.n_node[graph])
            nodes = slice(node_start, node_start + count)
            node_start += count
            results[index] = StructurePrediction(
                num_atoms=count,
                energy=float(prediction.energy[graph]),
                forces=np.asarray(prediction.forces[nodes]),
                stress=(
                    None
                    if prediction.stress is None
                    else np.asarray(prediction.stress[graph])
                ),
                reference_energy=(
                    float(batch.energy[graph]) if batch.has_energy[graph] else None
                ),
                reference_forces=(
                    np.asarray(batch.forces[nodes]) if batch.has_forces[graph] else None
                ),
                reference_stress=(
                    np.asarray(batch.stress[graph]) if batch.has_stress[graph] else None
                ),
            )
    assert all(result is not None for result in results)  # every structure once
    return results
