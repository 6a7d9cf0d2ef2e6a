"""MLIPForceFieldASECalculator: a force field as an ASE calculator."""

import dataclasses
import logging
import math
import os

import ase
import jax
import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from mlip_eqx.graph.batching import batch_graphs
from mlip_eqx.graph.graph import Graph
from mlip_eqx.inference.atoms_graphs import graph_from_atoms
from mlip_eqx.inference.predictor import make_node_energies_predictor, make_predictor
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.inference_context import InferenceContext
from mlip_eqx.models.mlip_network import FloatDtypeName, MLIPNetwork
from mlip_eqx.models.model_io import load_model_from_zip

logger = logging.getLogger("mlip_eqx")

_SOURCE = "MLIPForceFieldASECalculator atoms"


class NumberOfAtomsChangedError(ValueError):
    """The calculator got another number of atoms than it was built for."""


class MLIPForceFieldASECalculator(Calculator):
    """ASE calculator of a mlip_eqx force field.

    Properties: ``energy`` and ``free_energy`` (eV, the same), ``forces`` (eV/Å),
    ``stress`` (eV/Å³, 6 Voigt values xx yy zz yz xz xy with ASE's sign, as
    ``atoms.get_stress()`` expects; only for cells of non-zero volume: ASE
    raises PropertyNotImplementedError for others, e.g. molecules) and
    ``energies`` (eV per atom, computed only when asked for). Stress is always
    available, whether or not the force field was built with
    ``predict_stress``, and computed only when asked for (``get_stress``), so
    that MD and relaxations skip its strain derivative. Periodic, partly
    periodic and non-periodic structures work; the graph is rebuilt (on the
    host) at every calculation.

    The structure is padded to a node and an edge capacity, so that the jitted
    prediction compiles once per capacity: a capacity grows (to the multiplier
    times the count that exceeded it) only when a structure does not fit, and
    only then the prediction recompiles. Float64 predictions need a float64
    force field (built, or loaded, with ``jax_enable_x64`` on).

    Attach it with ``atoms.calc = calculator``.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(
        self,
        atoms: ase.Atoms,
        edge_capacity_multiplier: float,
        force_field: ForceField,
        allow_nodes_to_change: bool = False,
        node_capacity_multiplier: float = 1.0,
        dataset_name: str | None = None,
    ) -> None:
        """Constructor.

        Args:
            atoms: The initial structure; it sets the first capacities (and the
                number of atoms, unless ``allow_nodes_to_change``).
            edge_capacity_multiplier: The edge capacity is this times the number
                of edges (directed neighbour pairs), when set and whenever it is
                exceeded; >= 1 (e.g. 1.25).
            force_field: The force field; its cutoff and elements build the graphs.
            allow_nodes_to_change: Whether later structures may have another
                number of atoms than ``atoms``; if not, that is an error.
            node_capacity_multiplier: The node capacity is this times the number
                of atoms, when set and whenever it is exceeded; >= 1. 1.0 (no
                spare nodes) suits a fixed number of atoms.
            dataset_name: The data set (readout head and reference energies) of
                a multi-head model to predict with; None: the force field's
                inference context, or data set 0.

        Raises:
            ValueError: A multiplier is below 1, or the model has no data set
                called ``dataset_name``.
            UnseenElementsError: ``atoms`` has an element the model does not know.
        """
        for name, value in (
            ("edge_capacity_multiplier", edge_capacity_multiplier),
            ("node_capacity_multiplier", node_capacity_multiplier),
        ):
            if not value >= 1.0:
                raise ValueError(
                    f"MLIPForceFieldASECalculator: {name} must be >= 1, got {value}."
                )
        super().__init__()
        if dataset_name is not None:
            context = InferenceContext(dataset_name=dataset_name)
            force_field = force_field.replace_inference_context(context)
        self.force_field = force_field
        self.edge_capacity_multiplier = float(edge_capacity_multiplier)
        self.node_capacity_multiplier = float(node_capacity_multiplier)
        self.allow_nodes_to_change = allow_nodes_to_change
        self.num_atoms = len(atoms)
        graph = graph_from_atoms(atoms, force_field, _SOURCE)
        self.node_capacity = _capacity(
            "node", graph.num_nodes, node_capacity_multiplier
        )
        self.edge_capacity = _capacity(
            "edge", graph.num_edges, edge_capacity_multiplier
        )
        # The strain derivative only when the stress is asked for: MD and
        # relaxations of positions ask for energy and forces alone.
        self._predict = make_predictor(
            dataclasses.replace(force_field, predict_stress=False)
        )
        self._predict_with_stress = make_predictor(
            dataclasses.replace(force_field, predict_stress=True)
        )
        self._predict_node_energies = make_node_energies_predictor(force_field)

    @classmethod
    def from_zip(
        cls,
        path: str | os.PathLike,
        atoms: ase.Atoms,
        edge_capacity_multiplier: float = 1.25,
        model_type: type[MLIPNetwork] | None = None,
        allow_nodes_to_change: bool = False,
        node_capacity_multiplier: float = 1.0,
        dataset_name: str | None = None,
        dtype: FloatDtypeName | None = None,
    ) -> "MLIPForceFieldASECalculator":
        """The calculator of a model archive (see
        :func:`~mlip_eqx.models.model_io.load_model_from_zip`).

        Args:
            path: The model zip.
            atoms: The initial structure.
            edge_capacity_multiplier: See the constructor.
            model_type: The network class, or None to take the one the archive
                names from the registry.
            allow_nodes_to_change: See the constructor.
            node_capacity_multiplier: See the constructor.
            dataset_name: See the constructor.
            dtype: The dtype to predict in; None: the saved one (see
                :func:`~mlip_eqx.models.model_io.load_model_from_zip`).
        """
        force_field = load_model_from_zip(model_type, path, dtype)
        return cls(
            atoms,
            edge_capacity_multiplier,
            force_field,
            allow_nodes_to_change=allow_nodes_to_change,
            node_capacity_multiplier=node_capacity_multiplier,
            dataset_name=dataset_name,
        )

    def calculate(
        self,
        atoms: ase.Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        """Computes energy, free energy and forces, and if among ``properties``
        the stress (for cells with a volume; its strain derivative is skipped
        otherwise) and per-atom energies, into ``self.results``.

        Args:
            atoms: The structure (None: the one of the last calculation).
            properties: The properties asked for (None: energy).
            system_changes: What changed since the last calculation (unused:
                everything is recomputed).

        Raises:
            NumberOfAtomsChangedError: The number of atoms is not the one the
                calculator was built for, and ``allow_nodes_to_change`` is False.
            UnseenElementsError: An element is not known to the model.
        """
        properties = ["energy"] if properties is None else properties
        atoms = self.atoms if atoms is None else atoms
        if atoms is None:
            raise ValueError("MLIPForceFieldASECalculator.calculate: no atoms given.")
        super().calculate(atoms, properties, system_changes)
        self.results = {}  # not to be read as labels of the atoms below
        batch = self._padded_batch(graph_from_atoms(atoms, self.force_field, _SOURCE))
        with_stress = (
            "stress" in properties and abs(np.linalg.det(atoms.cell.array)) > 0
        )
        predict = self._predict_with_stress if with_stress else self._predict
        prediction = jax.device_get(predict(batch))
        num_atoms = len(atoms)
        energy = float(prediction.energy[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": np.asarray(prediction.forces[:num_atoms], dtype=np.float64),
        }
        if with_stress:
            stress = np.asarray(prediction.stress[0], dtype=np.float64)
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
        if "energies" in properties:
            node_energies = jax.device_get(self._predict_node_energies(batch))
            self.results["energies"] = np.asarray(
                node_energies[:num_atoms], dtype=np.float64
            )

    def _padded_batch(self, graph: Graph) -> Graph:
        """The graph padded to the capacities, grown first if it does not fit."""
        if graph.num_nodes != self.num_atoms and not self.allow_nodes_to_change:
            raise NumberOfAtomsChangedError(
                f"MLIPForceFieldASECalculator: the structure has {graph.num_nodes} "
                f"atoms, but the calculator was built for {self.num_atoms}; create "
                "it with allow_nodes_to_change=True to allow that."
            )
        self.node_capacity = _fitting_capacity(
            "node", graph.num_nodes, self.node_capacity, self.node_capacity_multiplier
        )
        self.edge_capacity = _fitting_capacity(
            "edge", graph.num_edges, self.edge_capacity, self.edge_capacity_multiplier
        )
        return batch_graphs(
            [graph], n_node=self.node_capacity + 1, n_edge=self.edge_capacity, n_graph=2
        )


def _fitting_capacity(kind: str, count: int, capacity: int, multiplier: float) -> int:
    """``capacity`` if ``count`` nodes or edges fit, else the grown capacity."""
    if count <= capacity:
        return capacity
    grown = _capacity(kind, count, multiplier)
    logger.info(
        "ASE calculator: %s capacity grown from %d to %d (recompiling).",
        kind,
        capacity,
        grown,
    )
    return grown


def _capacity(kind: str, count: int, multiplier: float) -> int:
    """``ceil(multiplier * count)``, at least ``count``; for edges, even (padding
    edges come in pairs, keeping the paired edge layout) and at least 2."""
    capacity = max(count, math.ceil(multiplier * count))
    if kind == "node":
        return capacity
    capacity = max(2, capacity)
    return capacity + capacity % 2
