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

    A model trained on several data sets at once (e.g. fine-tuning data and
    replayed pretraining data computed with different reference energies) has
    one E0 map per data set, and one readout head per data set when its network
    has several (``num_readout_heads``): a structure's ``dataset_idx`` selects
    both. As in the original library, ``dataset_name`` and
    ``atomic_energies_map`` are then lists of equal length; every map covers
    the same elements.

    Attributes:
        atomic_energies_map: Reference energy per element {Z: eV} (E0), or one
            such map per data set (a tuple of maps; lists are accepted).
        cutoff_distance_angstrom: Graph cutoff in Å used to build the neighbour lists.
        avg_num_neighbors: Mean number of neighbours per atom.
        avg_r_min_angstrom: Mean over structures of the shortest edge length in Å,
            or None if unknown.
        scaling_mean: Shift of the per-atom energy readout in eV.
        scaling_stdev: Scale of the per-atom energy readout in eV.
        dataset_name: Name of the data set, or one name per data set (a tuple;
            lists are accepted); None: unnamed (a single data set). Inference
            and the ASE calculator select a head by this name.
        atomic_energies_source: Where the E0s came from, in words (e.g. "least
            squares", "isolated atoms in iso_atoms.xyz", "given"), or None if
            unknown (infos written before this field existed).
    """

    # Lists are accepted and stored as tuples (see __post_init__).
    atomic_energies_map: Mapping[int, float] | Sequence[Mapping[int, float]]
    cutoff_distance_angstrom: float
    avg_num_neighbors: float = 1.0
    avg_r_min_angstrom: float | None = None
    scaling_mean: float = 0.0
    scaling_stdev: float = 1.0
    dataset_name: str | Sequence[str] | None = None
    atomic_energies_source: str | None = None

    def __post_init__(self) -> None:
        is_multi = isinstance(self.atomic_energies_map, (list, tuple))
        maps = (
            list(self.atomic_energies_map) if is_multi else [self.atomic_energies_map]
        )
        if not maps:
            raise ValueError("atomic_energies_map: the list of maps is empty.")
        checked = [
            _checked_energies(
                energies,
                f"atomic_energies_map[{index}]" if is_multi else "atomic_energies_map",
            )
            for index, energies in enumerate(maps)
        ]
        for index, energies in enumerate(checked[1:], start=1):
            if energies.keys() != checked[0].keys():
                differ = sorted(set(energies) ^ set(checked[0]))
                raise ValueError(
                    f"atomic_energies_map[{index}] and atomic_energies_map[0] cover "
                    f"different elements (they differ in "
                    f"{', '.join(chemical_symbols[z] for z in differ)}); every data "
                    "set needs an E0 for each element of the model."
                )
        object.__setattr__(
            self, "atomic_energies_map", tuple(checked) if is_multi else checked[0]
        )
        object.__setattr__(
            self,
            "dataset_name",
            _checked_names(self.dataset_name, len(checked) if is_multi else None),
        )
        source = self.atomic_energies_source
        if source is not None and not (isinstance(source, str) and source):
            raise ValueError(
                "DatasetInfo.atomic_energies_source must be a non-empty string or "
                f"None, got {source!r}."
            )
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
                tuple(
                    tuple(energies.items()) for energies in self.atomic_energies_maps
                ),
                self.cutoff_distance_angstrom,
                self.avg_num_neighbors,
                self.avg_r_min_angstrom,
                self.scaling_mean,
                self.scaling_stdev,
                self.dataset_name,
                self.atomic_energies_source,
            )
        )

    @property
    def num_datasets(self) -> int:
        """Number of data sets (E0 maps), at least 1."""
        return len(self.atomic_energies_maps)

    @property
    def atomic_energies_maps(self) -> tuple[dict[int, float], ...]:
        """The E0 map of every data set (one for a single data set)."""
        if isinstance(self.atomic_energies_map, tuple):
            return self.atomic_energies_map
        return (self.atomic_energies_map,)

    @property
    def dataset_names(self) -> tuple[str | None, ...]:
        """The name of every data set (None where unnamed)."""
        if isinstance(self.dataset_name, tuple):
            return self.dataset_name
        return (self.dataset_name,) * self.num_datasets

    def dataset_index(self, name: str) -> int:
        """The index of the data set (and readout head) called ``name``.

        Raises:
            ValueError: No data set has that name; the message lists the names.
        """
        names = self.dataset_names
        if name not in names:
            known = [n for n in names if n is not None]
            raise ValueError(
                f"No data set is called {name!r}; this model's data sets are "
                f"{known if known else 'unnamed'}."
            )
        return names.index(name)

    def with_new_dataset(
        self, name: str, atomic_energies: Mapping[int, float] | None = None
    ) -> "DatasetInfo":
        """This info with one more data set (its index is ``num_datasets``).

        Args:
            name: Its name; it must differ from the existing names. Unnamed data
                sets are called "pretrained" (the first) and "dataset_<index>".
            atomic_energies: Its E0 map; None: a copy of data set 0's.
        """
        names = tuple(
            existing
            if existing is not None
            else ("pretrained" if index == 0 else f"dataset_{index}")
            for index, existing in enumerate(self.dataset_names)
        )
        if name in names:
            raise ValueError(f"DatasetInfo already has a data set called {name!r}.")
        energies = dict(
            self.atomic_energies_maps[0] if atomic_energies is None else atomic_energies
        )
        return dataclasses.replace(
            self,
            atomic_energies_map=(*self.atomic_energies_maps, energies),
            dataset_name=(*names, name),
        )

    @property
    def allowed_atomic_numbers(self) -> list[int]:
        """Sorted atomic numbers of the elements the model knows; species index i
        is the i-th of them."""
        return list(self.atomic_energies_maps[0])

    def __str__(self) -> str:
        def energies(mapping: Mapping[int, float]) -> str:
            listed = ", ".join(
                f"{chemical_symbols[z]}: {e:.4f} eV" for z, e in mapping.items()
            )
            return f"{{{listed}}}"

        if self.num_datasets == 1:
            atomic = energies(self.atomic_energies_maps[0])
        else:
            atomic = "; ".join(
                f"{name}: {energies(mapping)}"
                for name, mapping in zip(self.dataset_names, self.atomic_energies_maps)
            )
        r_min = (
            "unknown"
            if self.avg_r_min_angstrom is None
            else f"{self.avg_r_min_angstrom:.3f} Å"
        )
        name = "" if self.dataset_name is None else f"data sets: {self.dataset_name}, "
        source = (
            ""
            if self.atomic_energies_source is None
            else f" (from {self.atomic_energies_source})"
        )
        return (
            f"DatasetInfo({name}atomic energies{source}: {atomic}, "
            f"cutoff: {self.cutoff_distance_angstrom:.3f} Å, "
            f"avg. neighbours: {self.avg_num_neighbors:.3f}, avg. r_min: {r_min}, "
            f"scaling mean: {self.scaling_mean:.4f} eV, "
            f"scaling stdev: {self.scaling_stdev:.4f} eV)"
        )

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (atomic numbers become string keys; several
        data sets give lists, as in the original library)."""
        as_dict = dataclasses.asdict(self)
        maps = [
            {str(z): e for z, e in mapping.items()}
            for mapping in self.atomic_energies_maps
        ]
        multi = isinstance(self.atomic_energies_map, tuple)
        as_dict["atomic_energies_map"] = maps if multi else maps[0]
        if isinstance(self.dataset_name, tuple):
            as_dict["dataset_name"] = list(self.dataset_name)
        # Readable by versions without these fields when they are unset.
        for optional in ("dataset_name", "atomic_energies_source"):
            if as_dict[optional] is None:
                del as_dict[optional]
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
        maps = data["atomic_energies_map"]
        try:
            if isinstance(maps, list):
                data["atomic_energies_map"] = tuple(_float_map(m) for m in maps)
            else:
                data["atomic_energies_map"] = _float_map(maps)
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


def _float_map(mapping: Mapping) -> dict[int, float]:
    return {int(z): float(e) for z, e in dict(mapping).items()}


def _checked_energies(energies: Mapping, field: str) -> dict[int, float]:
    """The map with int keys and float values, sorted by Z; raises ValueError
    naming ``field`` for a bad atomic number or a non-finite energy."""
    try:
        checked = {int(z): float(e) for z, e in dict(energies).items()}
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{field} must map atomic numbers to energies in eV: {error}"
        ) from error
    for z, energy in checked.items():
        if not 1 <= z <= 118:
            raise ValueError(f"{field}: {z} is not an atomic number.")
        if not np.isfinite(energy):
            raise ValueError(f"{field}: E0 of Z={z} is not finite ({energy}).")
    return dict(sorted(checked.items()))


def _checked_names(
    names: str | Sequence[str] | None, num_datasets: int | None
) -> str | tuple[str, ...] | None:
    """``dataset_name`` as stored: None, a str (one data set) or a tuple of
    distinct str, one per data set (``num_datasets``; None for a single map)."""
    if names is None:
        return None
    if isinstance(names, str):
        if num_datasets is not None:
            raise ValueError(
                f"DatasetInfo.dataset_name is a single name ({names!r}) but there "
                f"are {num_datasets} E0 maps; give one name per data set."
            )
        return names
    names = tuple(names)
    if not all(isinstance(name, str) and name for name in names):
        raise ValueError(
            f"DatasetInfo.dataset_name: names must be non-empty strings, got {names}."
        )
    if num_datasets is None or len(names) != num_datasets:
        raise ValueError(
            f"DatasetInfo.dataset_name has {len(names)} names but there are "
            f"{num_datasets or 1} E0 maps (atomic_energies_map); give one per data "
            "set."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"DatasetInfo.dataset_name has duplicates: {names}.")
    return names


def fit_atomic_energies(
    graphs: Sequence[Graph], atomic_numbers: Sequence[int]
) -> dict[int, float]:
    """Least-squares fit of per-element energies E0 to the labelled total energies.

    Exact when every energy is a sum of per-element constants. When the data do
    not determine every E0 (e.g. a molecule data set: one composition, so only
    the sum of its atoms' E0 is known), a warning names the undetermined
    elements, and of all least-squares solutions the one closest to an equal E0
    for every element is chosen (closest to m·(1, ..., 1) with m the mean
    energy per atom): a single composition gets E0 = m for every element. Data
    that determine every E0 give the unique least-squares solution. Elements in
    no labelled structure get 0.

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
    present = np.flatnonzero(counts.sum(axis=0) > 0)
    counts = counts[:, present]
    e0 = np.zeros(len(atomic_numbers))
    undetermined = _undetermined_columns(counts)
    if not undetermined.size:
        e0[present], *_ = np.linalg.lstsq(counts, energies, rcond=None)
    else:
        # The least-squares solutions are x0 + null space; the one closest to
        # m·1 is m·1 plus the minimum-norm solution for the energies minus m·n.
        mean = energies.sum() / counts.sum()
        shift, *_ = np.linalg.lstsq(counts, energies - mean * counts.sum(1), rcond=None)
        e0[present] = mean + shift
        names = ", ".join(
            chemical_symbols[int(atomic_numbers[present[i]])] for i in undetermined
        )
        logger.warning(
            "The training energies do not determine the reference energies (E0) of "
            "%s (too few different compositions for a least-squares fit): they are "
            "set to the least-squares solution closest to an equal E0 for every "
            "element (%.4f eV, the mean energy per atom). Give the isolated-atom "
            "energies (--isolated-atoms FILE, or one-atom frames in the training "
            "files) or an explicit map (--atomic-energies).",
            names,
            mean,
        )
    return {int(z): float(e) for z, e in zip(atomic_numbers, e0)}


def _undetermined_columns(matrix: np.ndarray) -> np.ndarray:
    """Indices of the unknowns of ``matrix @ x = b`` that least squares does not
    determine (their unit vectors are not in the row space of ``matrix``)."""
    _, singular_values, vh = np.linalg.svd(matrix, full_matrices=True)
    tolerance = max(matrix.shape) * np.finfo(np.float64).eps * singular_values.max()
    rank = int(np.sum(singular_values > tolerance))
    null_space = vh[rank:]  # rows: an orthonormal basis of the null space
    if not null_space.size:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.linalg.norm(null_space, axis=0) > 1e-8)


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
    graphs: Sequence[Graph], atomic_energies: np.ndarray
) -> tuple[float, float]:
    """Energy scaling as in MACE's ``rms_forces_scaling``.

    Args:
        graphs: Unpadded single-structure graphs.
        atomic_energies: E0 in eV of every data set and species,
            [num_datasets, num_species] (a graph uses its ``dataset_idx``'s row).

    Returns:
        (mean per-atom energy after subtracting E0 in eV, RMS of force components in
        eV/Å, used as an energy scale).
    """
    table = np.atleast_2d(atomic_energies)
    residuals = [
        (float(g.energy[0]) - table[int(g.dataset_idx[0])][g.species].sum())
        / int(g.n_node[0])
        for g in graphs
        if bool(g.has_energy[0])
    ]
    forces = [g.forces for g in graphs if bool(g.has_forces[0])]
    mean = float(np.mean(residuals)) if residuals else 0.0
    rms = float(np.sqrt(np.mean(np.concatenate(forces) ** 2))) if forces else 1.0
    return mean, rms if rms > 0 else 1.0
