"""A trained model on a set of structures: error metrics, predictions, parity plots.

What ``mlip-eqx evaluate`` runs (:func:`mlip_eqx.workflows.evaluate.evaluate`)
is built on these functions.
"""

import dataclasses
import logging
import os
from collections.abc import Sequence

import ase
import ase.io
import jax
import numpy as np

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.data.graph_creation import graph_from_chemical_system, species_table
from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.inference.atoms_graphs import check_known_elements
from mlip_eqx.inference.batched_inference import StructurePrediction, predict_dataset
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.loss import MSELoss
from mlip_eqx.training.epoch import evaluate
from mlip_eqx.training.mesh import make_mesh
from mlip_eqx.training.training_step import make_eval_step
from mlip_eqx.utils.files import atomic_write

logger = logging.getLogger("mlip_eqx")

# Names of the predictions in the written extxyz (as mace-torch's eval tool).
PREDICTION_PREFIX = "MLIP_"


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """A model's errors and predictions on a set of structures.

    Attributes:
        metrics: MAE, RMSE, relative errors and 95th percentiles of energies
            (``_e``, eV), energies per atom (``_e_per_atom``, eV), forces (``_f``,
            eV/Å) and stress (``_stress``, eV/Å³, if predicted), each over the
            structures that have the label; empty if none has any label.
        predictions: One per structure, in the input order.
    """

    metrics: dict[str, float]
    predictions: list[StructurePrediction]


def evaluate_force_field(
    force_field: ForceField, systems: Sequence[ChemicalSystem], batch_size: int = 16
) -> Evaluation:
    """Predicts every structure and measures the errors against its labels.

    Args:
        force_field: The model.
        systems: Structures, labelled or not (e.g. from a reader's ``load()``).
        batch_size: Structures per batch, at most.

    Raises:
        ValueError: If there are no structures, or one has an element the model
            does not know (naming the structure and the element).
    """
    if not systems:
        raise ValueError("There are no structures to evaluate.")
    for system in systems:
        check_known_elements(
            system.atomic_numbers, force_field.allowed_atomic_numbers, system.source
        )
    table = species_table(force_field.allowed_atomic_numbers)
    graphs = [
        graph_from_chemical_system(system, force_field.cutoff_distance, table)
        for system in systems
    ]
    dataset = GraphDataset(
        graphs,
        batch_size=batch_size,
        should_shuffle=False,
        sources=[system.source for system in systems],
    )
    predictions = predict_dataset(force_field, dataset)
    metrics: dict[str, float] = {}
    if any(_has_labels(system) for system in systems):
        mesh = make_mesh(jax.devices()[:1])
        step = make_eval_step(force_field, MSELoss(extended_metrics=True), mesh)
        everything = evaluate(step, force_field.params, dataset, mesh, 0)
        metrics = {
            name: value
            for name, value in everything.items()
            if name != "loss" and not name.endswith("_weight")
        }
    return Evaluation(metrics=metrics, predictions=predictions)


def _has_labels(system: ChemicalSystem) -> bool:
    return any(
        label is not None for label in (system.energy, system.forces, system.stress)
    )


def write_predictions(
    path: str | os.PathLike,
    systems: Sequence[ChemicalSystem],
    predictions: Sequence[StructurePrediction],
) -> None:
    """Writes the structures with their labels and predictions as extxyz.

    Every frame has the structure, its labels as ``REF_energy``, ``REF_forces`` and
    ``REF_stress`` (when it has them) and the predictions as ``MLIP_energy`` (eV),
    ``MLIP_forces`` (eV/Å) and ``MLIP_stress`` (eV/Å³, 3x3 flat, ASE's sign, if
    predicted). The file is replaced atomically.
    """
    frames = []
    for system, prediction in zip(systems, predictions, strict=True):
        atoms = ase.Atoms(
            numbers=system.atomic_numbers,
            positions=system.positions,
            cell=system.cell,
            pbc=system.pbc,
        )
        if system.energy is not None:
            atoms.info["REF_energy"] = float(system.energy)
        if system.forces is not None:
            atoms.arrays["REF_forces"] = np.asarray(system.forces)
        if system.stress is not None:
            atoms.info["REF_stress"] = np.asarray(system.stress).ravel()
        atoms.info[f"{PREDICTION_PREFIX}energy"] = prediction.energy
        atoms.arrays[f"{PREDICTION_PREFIX}forces"] = prediction.forces
        if prediction.stress is not None:
            atoms.info[f"{PREDICTION_PREFIX}stress"] = prediction.stress.ravel()
        frames.append(atoms)
    with atomic_write(path, "w") as file:
        ase.io.write(file, frames, format="extxyz")
