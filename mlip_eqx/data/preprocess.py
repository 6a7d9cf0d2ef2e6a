"""Preprocessed data sets: graphs built once, stored as sharded HDF5 with their
DatasetInfo, and trained on without holding them in memory.

    preprocess(reader, "data/pre", GraphDatasetBuilder.Config(...))
    train_set, validation_set, test_set, info = load_preprocessed("data/pre", config)

The directory holds ``dataset_info.json``, ``preprocessed.json`` (the format
version, the cutoff and the sizes of the splits) and one directory of shards per
split (``train/``, ``validation/``, ``test/``; see
:mod:`mlip_eqx.data.graph_shards`). :func:`load_preprocessed` gives datasets
whose batches equal those of :class:`~mlip_eqx.data.GraphDatasetBuilder` on the
same data and settings: the same graphs, sizes and batching, read from the
shards when a batch is made.
"""

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.data.graph_dataset_builder import (
    GraphDatasetBuilder,
    GraphDatasetBuilderConfig,
    batched_dataset,
)
from mlip_eqx.data.graph_shards import ShardedGraphs, write_graph_shards
from mlip_eqx.data.readers.reader import ChemicalSystemsReader
from mlip_eqx.utils.files import atomic_write

FORMAT_VERSION = 1
SPLITS = ("train", "validation", "test")
MANIFEST = "preprocessed.json"
DEFAULT_SHARD_SIZE = 10_000


class PreprocessedDataError(ValueError):
    """A preprocessed directory is incomplete, of another format, or was built
    with other settings than those asked for."""


def preprocess(
    reader: ChemicalSystemsReader,
    output_dir: str | os.PathLike,
    config: GraphDatasetBuilderConfig | None = None,
    dataset_info: DatasetInfo | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    *,
    atomic_energies: Mapping[str, float] | Mapping[int, float] | None = None,
    atomic_energies_source: str = "given",
    isolated_atoms: Sequence[ChemicalSystem] = (),
    overwrite: bool = False,
) -> DatasetInfo:
    """Builds the graphs of ``reader``'s splits and writes them as shards.

    The structures are read and the graphs built as by
    :class:`~mlip_eqx.data.GraphDatasetBuilder` (with ``config``,
    ``dataset_info``, ``atomic_energies``, ``atomic_energies_source`` and
    ``isolated_atoms``, which are its arguments; held in memory once), then
    written split by split.
    ``preprocessed.json`` is written last, so a directory without it is an
    interrupted run, whose files are replaced; a directory that already holds
    a complete preprocessed set is replaced only with ``overwrite``, and one
    that holds anything else (e.g. a training run's) is refused. The files are
    replaced after the graphs are built.

    Returns:
        The DatasetInfo (also written as ``dataset_info.json``).

    Raises:
        FileExistsError: The directory holds other files than a preprocessed
            set's (naming them), or a complete set without ``overwrite``.
    """
    config = config or GraphDatasetBuilderConfig()
    output_dir = Path(output_dir)
    _check_output_dir(output_dir, overwrite)
    builder = GraphDatasetBuilder(
        reader,
        config,
        dataset_info,
        atomic_energies=atomic_energies,
        atomic_energies_source=atomic_energies_source,
        isolated_atoms=isolated_atoms,
    )
    builder.prepare_datasets()
    info = builder.dataset_info
    output_dir.mkdir(parents=True, exist_ok=True)
    _remove_preprocessed_files(output_dir)
    sizes = {}
    for split, dataset in zip(SPLITS, builder.get_splits(), strict=True):
        sizes[split] = write_graph_shards(
            dataset.graphs, dataset.sources, output_dir / split, shard_size
        )
    info.save_json(output_dir / "dataset_info.json")
    with atomic_write(output_dir / MANIFEST, "w") as file:
        json.dump(
            {
                "format_version": FORMAT_VERSION,
                "graph_cutoff_angstrom": config.graph_cutoff_angstrom,
                "use_formation_energies": config.use_formation_energies,
                "num_structures": sizes,
            },
            file,
            indent=2,
        )
    return info


def _own_entries() -> set[str]:
    """The names a preprocessed set's directory holds."""
    return {MANIFEST, "dataset_info.json", *SPLITS}


def _check_output_dir(output_dir: Path, overwrite: bool) -> None:
    """Refuses a directory with foreign files, or a complete set unless
    ``overwrite``."""
    if not output_dir.exists():
        return
    if not output_dir.is_dir():
        raise FileExistsError(f"{output_dir}: a file, not a directory.")
    foreign = sorted(
        entry.name for entry in output_dir.iterdir() if entry.name not in _own_entries()
    )
    if foreign:
        raise FileExistsError(
            f"{output_dir} holds other files than a preprocessed data set "
            f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}); "
            "use an empty or new directory."
        )
    if (output_dir / MANIFEST).exists() and not overwrite:
        raise FileExistsError(
            f"{output_dir} already holds a preprocessed data set; use another "
            "directory, or --overwrite to replace it."
        )


def _remove_preprocessed_files(output_dir: Path) -> None:
    """Removes the files of an earlier (complete or interrupted) set, manifest
    first so that a failure in between leaves an incomplete set."""
    (output_dir / MANIFEST).unlink(missing_ok=True)
    (output_dir / "dataset_info.json").unlink(missing_ok=True)
    for split in SPLITS:
        if (output_dir / split).is_dir():
            shutil.rmtree(output_dir / split)


def load_preprocessed(
    directory: str | os.PathLike, config: GraphDatasetBuilderConfig | None = None
) -> tuple[GraphDataset, GraphDataset, GraphDataset, DatasetInfo]:
    """The (train, validation, test) datasets and the DatasetInfo of a
    directory written by :func:`preprocess`, batched with ``config``'s settings
    (its graph settings must be those the set was built with).

    Raises:
        PreprocessedDataError: The directory is not a complete preprocessed set,
            or ``config`` asks for another cutoff or E0 treatment.
    """
    config = config or GraphDatasetBuilderConfig()
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise PreprocessedDataError(
            f"{directory}: not a preprocessed data set (no {MANIFEST}; an "
            "interrupted mlip-eqx preprocess leaves none)."
        )
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format_version") != FORMAT_VERSION:
        raise PreprocessedDataError(
            f"{manifest_path}: format {manifest.get('format_version')}, expected "
            f"{FORMAT_VERSION}."
        )
    for name in ("graph_cutoff_angstrom", "use_formation_energies"):
        if manifest[name] != getattr(config, name):
            raise PreprocessedDataError(
                f"{directory} was preprocessed with {name}={manifest[name]}, but "
                f"the settings ask for {getattr(config, name)}; preprocess again "
                "or use its settings."
            )
    info = DatasetInfo.load_json(directory / "dataset_info.json")
    datasets = []
    for split in SPLITS:
        graphs = ShardedGraphs(directory / split)
        if len(graphs) != manifest["num_structures"][split]:
            raise PreprocessedDataError(
                f"{directory / split}: {len(graphs)} structures, the manifest says "
                f"{manifest['num_structures'][split]}."
            )
        datasets.append(batched_dataset(graphs, config, split == "train"))
    return (*datasets, info)
