"""Predictions of a force field for many structures, in few compiled shapes."""

import dataclasses
from collections.abc import Sequence

import ase
import jax
import numpy as np

from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.inference.atoms_graphs import check_known_elements, graph_from_atoms
from mlip_eqx.inference.predictor import make_predictor
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.inference_context import InferenceContext
from mlip_eqx.models.prediction import Prediction
from mlip_eqx.utils.progress import track


def run_batched_inference(
    structures: Sequence[ase.Atoms] | GraphDataset,
    force_field: ForceField,
    batch_size: int = 16,
    max_n_node: int | None = None,
    max_n_edge: int | None = None,
    dataset_name: str | None = None,
) -> list[Prediction]:
    """Predicts energy, forces and (if the force field predicts it) stress of every
    structure.

    The structures are batched by size into a few padded shapes (see
    :class:`~mlip_eqx.data.GraphDataset`), so the force field compiles once per
    shape; a progress bar (or log lines) follows the batches.

    Args:
        structures: A list of ``ase.Atoms`` (positions in Å; labels they carry are
            not used), or a GraphDataset (then ``batch_size``, ``max_n_node`` and
            ``max_n_edge`` are ignored: it is batched as it is).
        force_field: The force field; its cutoff and elements build the graphs.
        batch_size: Most structures per batch.
        max_n_node: If given, a batch holds at most ``batch_size * max_n_node``
            atoms; None: no limit.
        max_n_edge: If given, a batch holds at most ``2 * batch_size *
            max_n_edge`` directed edges (``max_n_edge`` counts neighbour pairs);
            None: no limit.
        dataset_name: The data set (readout head and reference energies) of a
            multi-head model to predict every structure with; None: the force
            field's inference context, or else each graph's ``dataset_idx``
            (0 for ``ase.Atoms``).

    Returns:
        One Prediction per structure, in input order (``dataset.graphs`` for a
        GraphDataset), on the host: energy in eV (a float), forces in eV/Å
        ([num_atoms, 3] numpy), and, if ``force_field.predict_stress``, stress in
        eV/Å³ ([3, 3] numpy, ASE's sign; zeros without a cell), pressure in
        eV/Å³ (a float) and the stress's parts ``stress_cell`` and
        ``stress_forces`` ([3, 3], see :class:`Prediction`); otherwise those are
        None.

    Raises:
        UnseenElementsError: (a ValueError) A structure has an element the model
            does not know; the message names the structure's index and the
            element. Raised before any prediction.
        ValueError: A GraphDataset's species index is beyond the model's elements.
        TypeError: ``structures`` is a single ``ase.Atoms`` or holds something
            else than ``ase.Atoms``.
        StructureTooLargeError: A structure does not fit ``max_n_node`` /
            ``max_n_edge``.
    """
    if dataset_name is not None:
        context = InferenceContext(dataset_name=dataset_name)
        force_field = force_field.replace_inference_context(context)
    if isinstance(structures, GraphDataset):
        _check_species(structures, force_field)
        dataset = structures
    else:
        atoms_list = _checked_atoms(structures)
        if not atoms_list:
            return []
        dataset = _dataset_of_atoms(
            atoms_list, force_field, batch_size, max_n_node, max_n_edge
        )
    predict = make_predictor(force_field)
    results: list[Prediction | None] = [None] * len(dataset.graphs)
    batches = zip(dataset.iter_batches(0), dataset.batch_indices(0), strict=True)
    for batch, indices in track(batches, "Predicting", total=dataset.num_batches()):
        prediction = jax.device_get(predict(batch))
        starts = np.cumsum(batch.n_node) - batch.n_node
        for index, graph in zip(indices, np.flatnonzero(batch.graph_mask), strict=True):
            nodes = slice(int(starts[graph]), int(starts[graph] + batch.n_node[graph]))
            results[index] = Prediction(
                energy=float(prediction.energy[graph]),
                forces=np.array(prediction.forces[nodes]),
                stress=_graph_part(prediction.stress, graph),
                pressure=(
                    None
                    if prediction.pressure is None
                    else float(prediction.pressure[graph])
                ),
                stress_cell=_graph_part(prediction.stress_cell, graph),
                stress_forces=_graph_part(prediction.stress_forces, graph),
            )
    assert all(result is not None for result in results)  # every structure once
    return results


def _graph_part(
    values: np.ndarray | None, graph: int | np.integer
) -> np.ndarray | None:
    """The entry of one graph of a per-graph prediction (None stays None)."""
    return None if values is None else np.array(values[graph])


def _checked_atoms(structures: Sequence[object]) -> list[ase.Atoms]:
    """``structures`` as a list after checking that every item is an ``ase.Atoms``."""
    if isinstance(structures, ase.Atoms):
        raise TypeError(
            "run_batched_inference: structures must be a list of ase.Atoms or a "
            "GraphDataset, got a single ase.Atoms (pass [atoms], or read a file "
            "with ase.io.read(path, index=':'))."
        )
    atoms_list = list(structures)
    others = [i for i, item in enumerate(atoms_list) if not isinstance(item, ase.Atoms)]
    if others:
        raise TypeError(
            f"run_batched_inference: structures[{others[0]}] is a "
            f"{type(atoms_list[others[0]]).__name__}, not an ase.Atoms."
        )
    return atoms_list


def _dataset_of_atoms(
    structures: list[ase.Atoms],
    force_field: ForceField,
    batch_size: int,
    max_n_node: int | None,
    max_n_edge: int | None,
) -> GraphDataset:
    """The unshuffled, size-bucketed dataset of the structures' graphs."""
    sources = [f"structure {index}" for index in range(len(structures))]
    for atoms, source in zip(structures, sources):
        check_known_elements(atoms.numbers, force_field.allowed_atomic_numbers, source)
    graphs = [
        graph_from_atoms(atoms, force_field, source)
        for atoms, source in track(
            list(zip(structures, sources)), "Building inference graphs"
        )
    ]
    return GraphDataset(
        graphs,
        batch_size,
        max_n_node,
        max_n_edge,
        should_shuffle=False,
        sources=sources,
    )


def _check_species(dataset: GraphDataset, force_field: ForceField) -> None:
    """Raises if a graph has a species index beyond the force field's elements."""
    num_species = len(force_field.allowed_atomic_numbers)
    for graph, source in zip(dataset.graphs, dataset.sources):
        species = np.asarray(graph.species)
        outside = species[(species < 0) | (species >= num_species)]
        if outside.size:
            raise ValueError(
                f"{source}: species index {int(outside[0])} is not one of the "
                f"model's {num_species} elements (the graphs were built with "
                "another element table than the model's)."
            )


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
        pressure: Predicted pressure -trace(stress)/3 in eV/Å³, or None if
            stress is not predicted.
        stress_cell: The stress's part through the cell in eV/Å³, [3, 3], or
            None if stress is not predicted (see
            :class:`~mlip_eqx.models.prediction.Prediction`).
        stress_forces: The stress's part through the atoms in eV/Å³, [3, 3], or
            None if stress is not predicted.
    """

    num_atoms: int
    energy: float
    forces: np.ndarray
    stress: np.ndarray | None
    reference_energy: float | None
    reference_forces: np.ndarray | None
    reference_stress: np.ndarray | None
    pressure: float | None = None
    stress_cell: np.ndarray | None = None
    stress_forces: np.ndarray | None = None


def predict_dataset(
    force_field: ForceField, dataset: GraphDataset
) -> list[StructurePrediction]:
    """Runs the force field over every batch of ``dataset``, with the labels.

    The prediction compiles once per batch shape of the dataset (it is
    :func:`run_batched_inference` of the dataset).

    Returns:
        One StructurePrediction per structure, in the dataset's order
        (``dataset.graphs``).
    """
    predictions = run_batched_inference(dataset, force_field)
    return [
        StructurePrediction(
            num_atoms=int(graph.n_node[0]),
            energy=prediction.energy,
            forces=prediction.forces,
            stress=prediction.stress,
            reference_energy=float(graph.energy[0]) if graph.has_energy[0] else None,
            reference_forces=(
                np.asarray(graph.forces) if graph.has_forces[0] else None
            ),
            reference_stress=(
                np.asarray(graph.stress[0]) if graph.has_stress[0] else None
            ),
            pressure=prediction.pressure,
            stress_cell=prediction.stress_cell,
            stress_forces=prediction.stress_forces,
        )
        for prediction, graph in zip(predictions, dataset.graphs, strict=True)
    ]
