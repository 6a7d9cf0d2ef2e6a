"""GraphDatasetBuilder: from a reader to train/validation/test GraphDatasets."""

import dataclasses
import logging
from collections.abc import Collection, Sequence
from typing import Literal

import jax
import numpy as np
from jax.sharding import Mesh

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.data.dataset_info import (
    DatasetInfo,
    average_min_edge_length,
    average_num_neighbours,
    fit_atomic_energies,
    rms_forces_scaling,
)
from mlip_eqx.data.graph_creation import (
    DEFAULT_MIN_INTERATOMIC_DISTANCE,
    graph_from_chemical_system,
    species_table,
)
from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.data.readers import ChemicalSystemsReader
from mlip_eqx.data.split_selection import (
    UnseenElementsError as UnseenElementsError,
)
from mlip_eqx.data.split_selection import (
    check_dataset_indices,
    check_neighbours,
    drop_unseen_elements,
    hold_out_validation,
)
from mlip_eqx.graph.graph import Graph
from mlip_eqx.utils.config import (
    Config,
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)
from mlip_eqx.utils.progress import track

logger = logging.getLogger("mlip_eqx")


class DatasetsHaveNotBeenProcessedError(RuntimeError):
    """Raised when results are read before ``prepare_datasets()`` ran."""


@dataclasses.dataclass(frozen=True)
class GraphDatasetBuilderConfig(Config):
    """Settings of graph construction and batching.

    Attributes:
        graph_cutoff_angstrom: Neighbour cutoff in Å.
        min_interatomic_distance_angstrom: A structure with two atoms closer than
            this (in Å; a periodic image of an atom, or of the atom itself, counts)
            is an error naming the structure and the atoms; 0 turns the check off.
        max_n_node: If set, a batch holds at most ``batch_size * max_n_node``
            atoms (a memory limit; batches of large structures then hold fewer
            structures), and a structure with more is an error naming it. None:
            no limit, every structure of every split fits.
        max_n_edge: If set, a batch holds at most ``2 * batch_size * max_n_edge``
            directed edges (``max_n_edge`` counts neighbour pairs, as in the
            original library). None: no limit.
        batch_size: Maximum number of structures per batch.
        max_batch_shapes: Largest number of padded batch shapes per split: the
            structures are bucketed by size, one shape per bucket, and the jitted
            steps compile once per shape (1: one shape for all structures).
        target_padding_efficiency: The fewest shapes whose node and edge padding
            efficiencies (real / padded) both reach this are used.
        num_batch_prefetch: Batches prepared ahead on a background thread (0: none).
        use_formation_energies: Subtract the fitted E0s from all energy labels (then
            the model should use zero atomic energies).
        avg_num_neighbors: Use this instead of computing it from the training set.
        avg_r_min_angstrom: Use this instead of computing it from the training set.
        validation_fraction: Fraction of the training structures held out for
            validation when the reader gives no validation data. The default 0
            holds out nothing (as the original library): the validation split is
            then empty (a warning says so), and evaluating it in the training
            loop is an error; give validation data or set e.g. 0.1.
        split_seed: Seed of that hold-out split.
        shuffle_seed: Seed of the per-epoch shuffling of the training set.
        strict_elements: If True, validation/test structures with elements absent
            from the training set raise an error; if False they are dropped with a
            warning.
        energy_scaling: "none" (scaling mean 0 eV, stdev 1 eV, as in the original
            library) or "rms_forces" (mean per-atom energy after E0 and the RMS of
            the force components, as MACE's rms_forces_scaling).
    """

    graph_cutoff_angstrom: PositiveFloat = 5.0
    min_interatomic_distance_angstrom: NonNegativeFloat = (
        DEFAULT_MIN_INTERATOMIC_DISTANCE
    )
    max_n_node: PositiveInt | None = None
    max_n_edge: PositiveInt | None = None
    batch_size: PositiveInt = 16
    max_batch_shapes: PositiveInt = 6
    target_padding_efficiency: Fraction = 0.9
    num_batch_prefetch: NonNegativeInt = 1
    use_formation_energies: bool = False
    avg_num_neighbors: PositiveFloat | None = None
    avg_r_min_angstrom: PositiveFloat | None = None
    validation_fraction: Fraction = 0.0
    split_seed: int = 42
    shuffle_seed: int = 42
    strict_elements: bool = False
    energy_scaling: Literal["none", "rms_forces"] = "none"


class GraphDatasetBuilder:
    """Reads structures, builds graphs and batches them; computes the DatasetInfo.

    Example::

        builder = GraphDatasetBuilder(reader, GraphDatasetBuilder.Config(batch_size=8))
        builder.prepare_datasets()
        train_set, validation_set, test_set = builder.get_splits()
        dataset_info = builder.dataset_info
    """

    Config = GraphDatasetBuilderConfig

    def __init__(
        self,
        reader: ChemicalSystemsReader,
        config: GraphDatasetBuilderConfig | None = None,
        dataset_info: DatasetInfo | None = None,
        refit_atomic_energies: bool | Collection[int] = False,
    ):
        """Constructor.

        Args:
            reader: Gives the train, validation and test structures (``load()``).
            config: Graph and batching settings (default: ``Config()``).
            dataset_info: A precomputed DatasetInfo (e.g. of a pretrained model) to
                use instead of computing one; its elements define the species table
                and its cutoff must equal ``graph_cutoff_angstrom``.
            refit_atomic_energies: With ``dataset_info``: fit new reference
                energies (E0) to the training set, keeping the given ones for
                elements it lacks and every other statistic (for fine-tuning
                on data computed with other reference energies, e.g. another
                DFT setup). True refits every data set that has training
                structures (each on its own, by ``dataset_idx``); a collection
                of data set indices refits those.

        Every structure's ``dataset_idx`` must name a data set: one of
        ``dataset_info``'s, or, when the info is computed, one with training
        structures (the data sets are 0, 1, ... and each gets its own E0 fit).
        """
        if refit_atomic_energies and dataset_info is None:
            raise ValueError(
                "refit_atomic_energies needs a given dataset_info (that of the "
                "pretrained model); without one, all statistics are fitted anyway."
            )
        self._reader = reader
        self._config = config or GraphDatasetBuilderConfig()
        self._given_dataset_info = dataset_info
        self._refit_atomic_energies = refit_atomic_energies
        if (
            dataset_info is not None
            and dataset_info.cutoff_distance_angstrom
            != self._config.graph_cutoff_angstrom
        ):
            raise ValueError(
                f"dataset_info has cutoff {dataset_info.cutoff_distance_angstrom} Å "
                f"but graph_cutoff_angstrom is {self._config.graph_cutoff_angstrom} Å."
            )
        self._dataset_info: DatasetInfo | None = None
        self._splits: tuple[GraphDataset, GraphDataset, GraphDataset] | None = None

    @property
    def config(self) -> GraphDatasetBuilderConfig:
        """The builder's settings."""
        return self._config

    @property
    def dataset_info(self) -> DatasetInfo:
        """The DatasetInfo of the training set (after ``prepare_datasets()``)."""
        if self._dataset_info is None:
            raise DatasetsHaveNotBeenProcessedError(
                "dataset_info is not available yet: call prepare_datasets() first."
            )
        return self._dataset_info

    def get_splits(
        self,
        prefetch: bool = False,
        devices: Sequence[jax.Device] | None = None,
        *,
        mesh: Mesh | None = None,
    ) -> tuple[GraphDataset, GraphDataset, GraphDataset]:
        """The (train, validation, test) datasets (after ``prepare_datasets()``).

        The arguments are the original library's. There, ``prefetch=True`` gave
        iterators of batches stacked per device and sharded over ``devices``
        (or ``mesh``), which its training loop needed for several devices.
        Here the datasets already build batches ahead on a background thread
        (``Config.num_batch_prefetch``), and :class:`~mlip_eqx.training.TrainingLoop`
        groups batches per device and places them itself, so ``prefetch=True``
        returns the same datasets: pass them to the loop, with
        ``should_parallelize=True`` for every device. Unlike the original's
        iterators, iterating one yields single padded batches; for batches
        stacked per device write ``dataset.iter_batches(epoch,
        num_devices=len(devices))`` (numpy), or
        ``mlip_eqx.training.device_batches(dataset, make_mesh(devices), epoch)``
        (on the devices).

        Args:
            prefetch: Accepted for the original's call (see above).
            devices: The devices to shard over (the original's argument); the
                loop uses all devices, so these must be all of them.
            mesh: The mesh to shard over (the original's later argument); its
                devices must be all devices, too.

        Raises:
            DatasetsHaveNotBeenProcessedError: Before ``prepare_datasets()``.
            ValueError: If ``devices`` or ``mesh`` is not all devices.
        """
        for name, given in (
            ("devices", devices),
            ("mesh", None if mesh is None else list(mesh.devices.flat)),
        ):
            if given is not None:
                _check_all_devices(name, given)
        if self._splits is None:
            raise DatasetsHaveNotBeenProcessedError(
                "Datasets are not available yet: call prepare_datasets() first."
            )
        del prefetch  # the datasets prefetch anyway (see the docstring)
        return self._splits

    def prepare_datasets(self) -> None:
        """Loads the structures, builds graphs, DatasetInfo and batched datasets."""
        config = self._config
        train, validation, test = self._reader.load()
        if not train:
            raise ValueError("The reader returned no training structures.")
        if not validation and config.validation_fraction > 0:
            train, validation = hold_out_validation(
                train, config.validation_fraction, config.split_seed
            )
        if self._given_dataset_info is not None:
            elements = self._given_dataset_info.allowed_atomic_numbers
            train = drop_unseen_elements(
                train, elements, "train", config.strict_elements
            )
        else:
            elements = sorted(
                set(np.concatenate([s.atomic_numbers for s in train]).tolist())
            )
        validation = drop_unseen_elements(
            validation, elements, "validation", config.strict_elements
        )
        test = drop_unseen_elements(test, elements, "test", config.strict_elements)
        if not validation:
            logger.warning(
                "There is no validation data: the validation split is empty, and "
                "training with it fails when it is evaluated. Give validation files "
                "or set GraphDatasetBuilder.Config.validation_fraction > 0 to hold "
                "out part of the training set."
            )

        z_to_species = species_table(elements)
        train_graphs, validation_graphs, test_graphs = (
            _build_graphs(systems, config, z_to_species, split)
            for systems, split in (
                (train, "train"),
                (validation, "validation"),
                (test, "test"),
            )
        )

        for graphs, systems, split in (
            (train_graphs, train, "train"),
            (validation_graphs, validation, "validation"),
            (test_graphs, test, "test"),
        ):
            check_neighbours(graphs, systems, split, config.graph_cutoff_angstrom)
        num_datasets = (
            self._given_dataset_info.num_datasets
            if self._given_dataset_info is not None
            else 1 + max(system.dataset_idx for system in train)
        )
        for systems, split in (
            (train, "train"),
            (validation, "validation"),
            (test, "test"),
        ):
            check_dataset_indices(systems, split, num_datasets)
        if self._given_dataset_info is None:
            self._dataset_info = self._compute_dataset_info(
                train_graphs, elements, num_datasets
            )
        elif self._refit_atomic_energies is not False:
            refitted = (
                range(num_datasets)
                if self._refit_atomic_energies is True
                else self._refit_atomic_energies
            )
            self._dataset_info = _with_refitted_atomic_energies(
                self._given_dataset_info, train_graphs, refitted
            )
        else:
            self._dataset_info = self._given_dataset_info
        logger.info("%s", self._dataset_info)
        if config.use_formation_energies:
            e0 = atomic_energies_table(self._dataset_info)
            train_graphs, validation_graphs, test_graphs = (
                [_subtract_atomic_energies(g, e0) for g in graphs]
                for graphs in (train_graphs, validation_graphs, test_graphs)
            )

        self._splits = (
            batched_dataset(train_graphs, config, True, [s.source for s in train]),
            batched_dataset(
                validation_graphs, config, False, [s.source for s in validation]
            ),
            batched_dataset(test_graphs, config, False, [s.source for s in test]),
        )

    def _compute_dataset_info(
        self, train_graphs: list[Graph], elements: list[int], num_datasets: int
    ) -> DatasetInfo:
        config = self._config
        empty = [
            index
            for index in range(num_datasets)
            if not _graphs_of_dataset(train_graphs, index)
        ]
        if empty:
            raise ValueError(
                f"Data sets {empty} have no training structures, but structures of "
                f"data set {num_datasets - 1} exist: number the data sets 0, 1, ... "
                "without gaps (ChemicalSystem.dataset_idx)."
            )
        per_dataset = [
            fit_atomic_energies(_graphs_of_dataset(train_graphs, index), elements)
            for index in range(num_datasets)
        ]
        atomic_energies = per_dataset[0] if num_datasets == 1 else tuple(per_dataset)
        scaling_mean, scaling_stdev = 0.0, 1.0
        if config.energy_scaling == "rms_forces":
            table = np.array([list(energies.values()) for energies in per_dataset])
            scaling_mean, scaling_stdev = rms_forces_scaling(train_graphs, table)
        return DatasetInfo(
            atomic_energies_map=atomic_energies,
            cutoff_distance_angstrom=config.graph_cutoff_angstrom,
            avg_num_neighbors=(
                config.avg_num_neighbors or average_num_neighbours(train_graphs)
            ),
            avg_r_min_angstrom=(
                config.avg_r_min_angstrom or average_min_edge_length(train_graphs)
            ),
            scaling_mean=scaling_mean,
            scaling_stdev=scaling_stdev,
        )


def _check_all_devices(name: str, devices: Sequence[jax.Device]) -> None:
    """Raises unless ``devices`` are those of this process or of all processes."""
    chosen = {device.id for device in devices}
    if chosen not in (
        {device.id for device in jax.local_devices()},
        {device.id for device in jax.devices()},
    ):
        raise ValueError(
            f"get_splits({name}=...): the training loop places batches on all "
            f"{len(jax.devices())} devices itself (TrainingLoop(..., "
            f"should_parallelize=True)), not on {len(chosen)} chosen ones: write "
            "get_splits(), and to train on fewer devices make only those visible "
            "to JAX (e.g. CUDA_VISIBLE_DEVICES) before it starts."
        )


def batched_dataset(
    graphs: Sequence[Graph],
    config: GraphDatasetBuilderConfig,
    shuffle: bool,
    sources: Sequence[str] | None = None,
) -> GraphDataset:
    """The GraphDataset of a split's graphs with the batching settings of
    ``config`` (shuffled every epoch for training)."""
    return GraphDataset(
        graphs,
        batch_size=config.batch_size,
        max_n_node=config.max_n_node,
        max_n_edge=config.max_n_edge,
        should_shuffle=shuffle,
        seed=config.shuffle_seed,
        num_batch_prefetch=config.num_batch_prefetch,
        sources=sources,
        max_batch_shapes=config.max_batch_shapes,
        target_padding_efficiency=config.target_padding_efficiency,
    )


def atomic_energies_table(dataset_info: DatasetInfo) -> np.ndarray:
    """The E0 of every data set and species in eV, [num_datasets, num_elements]."""
    return np.array(
        [list(energies.values()) for energies in dataset_info.atomic_energies_maps]
    )


def _graphs_of_dataset(graphs: list[Graph], dataset_idx: int) -> list[Graph]:
    return [graph for graph in graphs if int(graph.dataset_idx[0]) == dataset_idx]


def _with_refitted_atomic_energies(
    dataset_info: DatasetInfo, train_graphs: list[Graph], datasets: Collection[int]
) -> DatasetInfo:
    """``dataset_info`` with E0 fitted to the training graphs of each of
    ``datasets`` (by ``dataset_idx``) for the elements they contain (the others,
    and the other data sets, keep theirs)."""
    elements = dataset_info.allowed_atomic_numbers
    maps = list(dataset_info.atomic_energies_maps)
    for index in sorted(set(datasets)):
        if not 0 <= index < len(maps):
            raise ValueError(
                f"refit_atomic_energies: there is no data set {index} (the "
                f"DatasetInfo has {len(maps)})."
            )
        graphs = _graphs_of_dataset(train_graphs, index)
        if not graphs:
            continue
        fitted = fit_atomic_energies(graphs, elements)
        present = set(np.concatenate([g.species for g in graphs]).tolist())
        old = maps[index]
        maps[index] = {
            z: fitted[z] if species in present else old[z]
            for species, z in enumerate(elements)
        }
        logger.info(
            "Reference energies of data set %d (%s) refitted to its %d training "
            "structures (eV): %s",
            index,
            dataset_info.dataset_names[index] or "unnamed",
            len(graphs),
            ", ".join(f"Z={z}: {old[z]:.4f} -> {maps[index][z]:.4f}" for z in elements),
        )
    refitted = (
        maps[0]
        if len(maps) == 1 and not isinstance(dataset_info.atomic_energies_map, tuple)
        else tuple(maps)
    )
    return dataclasses.replace(dataset_info, atomic_energies_map=refitted)


def _build_graphs(
    systems: list[ChemicalSystem],
    config: GraphDatasetBuilderConfig,
    z_to_species: np.ndarray,
    split: str,
) -> list[Graph]:
    return [
        graph_from_chemical_system(
            system,
            config.graph_cutoff_angstrom,
            z_to_species,
            min_interatomic_distance=config.min_interatomic_distance_angstrom,
        )
        for system in track(systems, f"Building {split} graphs")
    ]


def _subtract_atomic_energies(graph: Graph, atomic_energies: np.ndarray) -> Graph:
    """The graph with its data set's E0 ([num_datasets, num_elements]) subtracted
    from its energy label."""
    e0 = atomic_energies[int(graph.dataset_idx[0])]
    formation = graph.energy - e0[graph.species].sum() * graph.has_energy
    return dataclasses.replace(graph, energy=formation)
