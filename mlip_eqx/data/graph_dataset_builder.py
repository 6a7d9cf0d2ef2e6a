"""GraphDatasetBuilder: from a reader to train/validation/test GraphDatasets."""

import logging
from collections.abc import Collection, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from mlip_eqx.data.atomic_energies import (
    LEAST_SQUARES,
    atomic_energies_by_number,
    atomic_energies_table,
    graphs_of_dataset,
    reference_atomic_energies,
    subtract_atomic_energies,
    with_refitted_atomic_energies,
)
from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.data.dataset_info import (
    DatasetInfo,
    average_min_edge_length,
    average_num_neighbours,
    fit_atomic_energies,
    rms_forces_scaling,
)
from mlip_eqx.data.graph_creation import (
    graph_from_chemical_system,
    species_table,
)
from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.data.graph_dataset_builder_config import (
    GraphDatasetBuilderConfig as GraphDatasetBuilderConfig,
)
from mlip_eqx.data.isolated_atoms import (
    check_isolated_atoms,
    isolated_atom_energies,
    isolated_atoms_origin,
    split_isolated_atoms,
)
from mlip_eqx.data.label_checks import check_training_labels
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
from mlip_eqx.utils.progress import track

logger = logging.getLogger("mlip_eqx")


class DatasetsHaveNotBeenProcessedError(RuntimeError):
    """Raised when results are read before ``prepare_datasets()`` ran."""


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
        *,
        atomic_energies: Mapping[str, float] | Mapping[int, float] | None = None,
        atomic_energies_source: str = "given",
        isolated_atoms: Sequence[ChemicalSystem] = (),
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
            atomic_energies: Reference energies {element: E0 in eV} (symbols or
                atomic numbers) to use instead of a least-squares fit, for every
                data set; they win over isolated atoms' energies. Each element of
                the training data needs an E0 (from here or an isolated atom);
                E0s of other elements are not used. Not with ``dataset_info``.
            atomic_energies_source: Where ``atomic_energies`` come from, in
                words, recorded in the DatasetInfo (e.g. "given in e0.json").
            isolated_atoms: Isolated atoms (one atom each, no periodic images
                within the cutoff, e.g. read from a file of them) whose energies
                are the E0s of their elements.

        Isolated atoms in the reader's splits (one-atom structures that see no
        periodic image within the cutoff, see
        :func:`~mlip_eqx.data.isolated_atoms.split_isolated_atoms`) are taken
        out of the splits; those of the training split give E0s too. Without
        given or isolated-atom E0s, they are fitted by least squares.

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
        if dataset_info is not None and atomic_energies is not None:
            raise ValueError(
                "atomic_energies and dataset_info exclude each other: the E0s of a "
                "given DatasetInfo are used (or refitted, refit_atomic_energies)."
            )
        self._atomic_energies = (
            None
            if atomic_energies is None
            else atomic_energies_by_number(atomic_energies, atomic_energies_source)
        )
        self._atomic_energies_source = atomic_energies_source
        check_isolated_atoms(isolated_atoms, self._config.graph_cutoff_angstrom)
        self._isolated_atoms = list(isolated_atoms)
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
        cutoff = config.graph_cutoff_angstrom
        train, isolated = split_isolated_atoms(train, cutoff, "train")
        validation, test = (
            _without_isolated_atoms(systems, cutoff, split)
            for systems, split in ((validation, "validation"), (test, "test"))
        )
        isolated = [*self._isolated_atoms, *isolated]
        if not train:
            raise ValueError("The reader returned no training structures.")
        check_training_labels(train)
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
                train_graphs, elements, num_datasets, isolated
            )
        else:
            self._dataset_info = self._given_or_refitted_info(train_graphs, isolated)
        logger.info("%s", self._dataset_info)
        if config.use_formation_energies:
            e0 = atomic_energies_table(self._dataset_info)
            train_graphs, validation_graphs, test_graphs = (
                [subtract_atomic_energies(g, e0) for g in graphs]
                for graphs in (train_graphs, validation_graphs, test_graphs)
            )

        self._splits = (
            batched_dataset(train_graphs, config, True, [s.source for s in train]),
            batched_dataset(
                validation_graphs, config, False, [s.source for s in validation]
            ),
            batched_dataset(test_graphs, config, False, [s.source for s in test]),
        )

    def _given_or_refitted_info(
        self, train_graphs: list[Graph], isolated: list[ChemicalSystem]
    ) -> DatasetInfo:
        """The given DatasetInfo, its E0 refitted as asked."""
        info = self._given_dataset_info
        if isolated:
            logger.warning(
                "The %d isolated atoms (%s) are not used: the E0s of the given "
                "DatasetInfo are.",
                len(isolated),
                isolated_atoms_origin(isolated),
            )
        if self._refit_atomic_energies is False:
            return info
        refitted = (
            range(info.num_datasets)
            if self._refit_atomic_energies is True
            else self._refit_atomic_energies
        )
        return with_refitted_atomic_energies(info, train_graphs, refitted)

    def _compute_dataset_info(
        self,
        train_graphs: list[Graph],
        elements: list[int],
        num_datasets: int,
        isolated: list[ChemicalSystem],
    ) -> DatasetInfo:
        config = self._config
        empty = [
            index
            for index in range(num_datasets)
            if not graphs_of_dataset(train_graphs, index)
        ]
        if empty:
            raise ValueError(
                f"Data sets {empty} have no training structures, but structures of "
                f"data set {num_datasets - 1} exist: number the data sets 0, 1, ... "
                "without gaps (ChemicalSystem.dataset_idx)."
            )
        reference = reference_atomic_energies(
            elements,
            self._atomic_energies,
            self._atomic_energies_source,
            isolated_atom_energies(isolated),
            isolated_atoms_origin(isolated),
        )
        if reference is None:
            source = LEAST_SQUARES
            per_dataset = [
                fit_atomic_energies(graphs_of_dataset(train_graphs, index), elements)
                for index in range(num_datasets)
            ]
        else:
            energies, source = reference
            per_dataset = [energies] * num_datasets
        atomic_energies = per_dataset[0] if num_datasets == 1 else tuple(per_dataset)
        scaling_mean, scaling_stdev = 0.0, 1.0
        energy_scaling = config.energy_scaling
        if energy_scaling == "auto":
            energy_scaling = "none" if reference is None else "rms_forces"
        if energy_scaling == "rms_forces":
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
            atomic_energies_source=source,
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


def _without_isolated_atoms(
    systems: list[ChemicalSystem], cutoff: float, split: str
) -> list[ChemicalSystem]:
    """The structures of a validation or test split without its isolated atoms
    (logged), which are no test of a model."""
    kept, isolated = split_isolated_atoms(systems, cutoff, split)
    if isolated:
        logger.info(
            "%s: %d isolated atoms are left out (%s).",
            split,
            len(isolated),
            isolated_atoms_origin(isolated),
        )
    return kept
