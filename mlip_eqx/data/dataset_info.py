"""DatasetInfo: the statistics of the training set that a model needs."""

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np
from ase.data import chemical_symbols

from mlip_eqx.graph.graph import Graph
from mlip_eqx.utils.files import atomic_write

logger = logging.getLogger("mlip_eqx")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Statistics of the training data, stored with every model.

    Attributes:
        atomic_energies_map: Reference energy per element {Z: eV} (E0).
        cutoff_distance_angstrom: Graph cutoff in Å used to build the neighbour lists.
        avg_num_neighbors: Mean number of neighbours per atom.
        avg_r_min_angstrom: Mean over structures of the shortest edge length in Å,
            or None if unknown.
        scaling_mean: Shift of the per-atom energy readout in eV.
        scaling_stdev: Scale of the per-atom energy readout in eV.
    """

    atomic_energies_map: Mapping[int, float]
    cutoff_distance_angstrom: float
    avg_num_neighbors: float = 1.0
    avg_r_min_angstrom: float | None = None
    scaling_mean: float = 0.0
    scaling_stdev: float = 1.0

    def __post_init__(self) -> None:
        energies = {int(z): float(e) for z, e in dict(self.atomic_energies_map).items()}
        for z, energy in energies.items():
            if not 1 <= z <= 118:
                raise ValueError(f"atomic_energies_map: {z} is not an atomic number.")
            if not np.isfinite(energy):
                raise ValueError(
                    f"atomic_energies_map: E0 of Z={z} is not finite ({energy})."
                )
        object.__setattr__(self, "atomic_energies_map", dict(sorted(energies.items())))
        for name in ("cutoff_distance_angstrom", "avg_num_neighbors", "scaling_stdev"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"DatasetInfo.{name} must be > 0, got {value}.")
        if not np.isfinite(self.scaling_mean):
            raise ValueError(
                f"DatasetInfo.scaling_mean must be finite, got {self.scaling_mean}."
            )

    def __hash__(self) -> int:
        return hash(
            (
                tuple(self.atomic_energies_map.items()),
                self.cutoff_distance_angstrom,
                self.avg_num_neighbors,
                self.avg_r_min_angstrom,
                self.scaling_mean,
                self.scaling_stdev,
            )
        )

    @property
    def allowed_atomic_numbers(self) -> list[int]:
        """Sorted atomic numbers of the elements the model knows; species index i
        is the i-th of them."""
        return list(self.atomic_energies_map)

    def __str__(self) -> str:
        energies = ", ".join(
            f"{chemical_symbols[z]}: {e:.4f} eV"
            for z, e in self.atomic_energies_map.items()
        )
        r_min = (
            "unknown"
            if self.avg_r_min_angstrom is None
            else f"{self.avg_r_min_angstrom:.3f} Å"
        )
        return (
            f"DatasetInfo(atomic energies: {{{energies}}}, "
            f"cutoff: {self.cutoff_distance_angstrom:.3f} Å, "
            f"avg. neighbours: {self.avg_num_neighbors:.3f}, avg. r_min: {r_min}, "
            f"scaling mean: {self.scaling_mean:.4f} eV, "
            f"scaling stdev: {self.scaling_stdev:.4f} eV)"
        )

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (atomic numbers become string keys)."""
        as_dict = dataclasses.asdict(self)
        as_dict["atomic_energies_map"] = {
            str(z): e for z, e in self.atomic_energies_map.items()
        }
        return as_dict

    @classmethod
    def from_dict(cls, data: Mapping) -> "DatasetInfo":
        """Inverse of :meth:`to_dict`; unknown or missing keys raise ValueError."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"DatasetInfo: unknown keys {sorted(unknown)}.")
        if "atomic_energies_map" not in data or "cutoff_distance_angstrom" not in data:
            raise ValueError(
                "DatasetInfo needs 'atomic_energies_map' and "
                "'cutoff_distance_angstrom'."
            )
        data = dict(data)
        try:
            data["atomic_energies_map"] = {
                int(z): float(e) for z, e in dict(data["atomic_energies_map"]).items()
            }
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"DatasetInfo.atomic_energies_map must map atomic numbers to "
                f"energies in eV: {error}"
            ) from error
        return cls(**data)

    def save_json(self, path: str | os.PathLike) -> None:
        """Writes the info as JSON to ``path`` (atomically: a reader sees the old
        file or the new one, never a part)."""
        with atomic_write(path, "w") as file:
            json.dump(self.to_dict(), file, indent=2)

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> "DatasetInfo":
        """Reads an info written by :meth:`save_json`."""
        with open(path) as file:
            try:
                data = json.load(file)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{path}: not a valid DatasetInfo JSON: {error}"
                ) from error
        return cls.from_dict(data)


def fit_atomic_energies(
    graphs: Sequence[Graph], atomic_numbers: Sequence[int]
) -> dict[int, float]:
    """Least-squares fit of per-element energies E0 to the labelled total energies.

    Exact when every energy is a sum of per-element constants. Elements whose E0 is
    not determined by the data (e.g. always present in a fixed ratio with another)
    get the minimum-norm solution.

    Args:
        graphs: Unpadded single-structure graphs (species index into
            ``atomic_numbers``).
        atomic_numbers: Sorted atomic numbers of the element table.

    Returns:
        {Z: E0 in eV} for every element of the table.
    """
    labelled = [g for g in graphs if bool(np.asarray(g.has_energy).all())]
    if not labelled:
        logger.warning("No energy labels in the training set: all E0 are set to 0.")
        return dict.fromkeys((int(z) for z in atomic_numbers), 0.0)
    counts = np.stack(
        [np.bincount(g.species, minlength=len(atomic_numbers)) for g in labelled]
    ).astype(np.float64)
    energies = np.array([float(g.energy[0]) for g in labelled])
    e0, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return {int(z): float(e) for z, e in zip(atomic_numbers, e0)}


def average_num_neighbours(graphs: Sequence[Graph]) -> float:
    """Mean number of neighbours per atom (edges per atom, isolated atoms count 0)."""
    num_edges = sum(int(g.n_edge.sum()) for g in graphs)
    num_nodes = sum(int(g.n_node.sum()) for g in graphs)
    return num_edges / num_nodes


def average_min_edge_length(graphs: Sequence[Graph]) -> float | None:
    """Mean over structures with edges of the shortest edge length in Å."""
    minima = []
    for graph in graphs:
        if graph.num_edges == 0:
            continue
        shifts = graph.shifts @ graph.cell[0]
        vectors = (
            graph.positions[graph.receivers] - graph.positions[graph.senders] + shifts
        )
        minima.append(np.linalg.norm(vectors, axis=-1).min())
    return float(np.mean(minima)) if minima else None


def rms_forces_scaling(
    graphs: Sequence[Graph], atomic_energies: Mapping[int, float]
) -> tuple[float, float]:
    """Energy scaling as in MACE's ``rms_forces_scaling``.

    Returns:
        (mean per-atom energy after subtracting E0 in eV, RMS of force components in
        eV/Å, used as an energy scale).
    """
    e0 = np.array(list(atomic_energies.values()))
    residuals = [
        (float(g.energy[0]) - e0[g.species].sum()) / int(g.n_node[0])
        for g in graphs
        if bool(g.has_energy[0])
    ]
    forces = [g.forces for g in graphs if bool(g.has_forces[0])]
    mean = float(np.mean(residuals)) if residuals else 0.0
    rms = float(np.sqrt(np.mean(np.concatenate(forces) ** 2))) if forces else 1.0
    return mean, rms if rms > 0 else 1.0
