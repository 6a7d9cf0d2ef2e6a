"""The data of a training job: its reader (files, the demo set, replayed
pretraining data) and its graph datasets (built, or read from a preprocessed
directory)."""

import dataclasses
import logging

from mlip_eqx.data.atomic_energies import (
    atomic_energies_by_number,
    parse_atomic_energies,
)
from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.data.demo import get_demo_dataset
from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.data.graph_dataset_builder import GraphDatasetBuilder
from mlip_eqx.data.preprocess import PreprocessedDataError, load_preprocessed
from mlip_eqx.data.readers.config_type_weights import (
    ConfigTypeWeightsReader,
    parse_config_type_weights,
)
from mlip_eqx.data.readers.dataset_index_reader import DatasetIndexReader
from mlip_eqx.data.readers.file_readers import reader_for_files
from mlip_eqx.data.readers.reader import ChemicalSystemsReader
from mlip_eqx.data.readers.replay_reader import ReplayReader
from mlip_eqx.utils.config import Config, ConfigError
from mlip_eqx.workflows.train_settings import DataSettings, TrainSettings

logger = logging.getLogger("mlip_eqx")

Splits = tuple[GraphDataset, GraphDataset, GraphDataset, DatasetInfo]


def required_labels(settings: TrainSettings) -> tuple[str, ...]:
    """The labels every training structure needs: energy and forces, and the
    stress if the loss trains on it (a model that predicts stress, such as a
    foundation model, fine-tunes on energies and forces alone with stress
    weight 0)."""
    trains_stress = settings.predict_stress and settings.loss.stress_weight > 0
    return ("energy", "forces", "stress") if trains_stress else ("energy", "forces")


def job_reader(
    settings: TrainSettings, new_dataset_idx: int = 0
) -> ChemicalSystemsReader:
    """The reader of the job's data (its files, or the demo data set): the new
    data in data set ``new_dataset_idx``, with the replayed pretraining data
    (data set 0) of ``settings.fine_tuning`` if any. The label keys and
    config_type weights of ``settings.data`` apply to the new data."""
    data = settings.data
    if data.train:
        splits = data.train, data.valid, data.test
    else:
        demo = get_demo_dataset(num_structures=data.demo_structures)
        splits = (demo.train_path,), (demo.validation_path,), (demo.test_path,)
    labels = required_labels(settings)
    reader = reader_for_files(*splits, required_labels=labels, **_label_keys(data))
    if data.config_type_weights is not None:
        weights = parse_config_type_weights(data.config_type_weights)
        reader = ConfigTypeWeightsReader(reader, weights)
    if new_dataset_idx:
        reader = DatasetIndexReader(reader, new_dataset_idx)
    fine_tuning = settings.fine_tuning
    if not fine_tuning.replay_paths:
        return reader
    replay = reader_for_files(fine_tuning.replay_paths, required_labels=labels)
    return ReplayReader(
        reader,
        replay,
        fine_tuning.replay_fraction,
        fine_tuning.replay_weight,
        seed=settings.graph_dataset.split_seed,
    )


def _label_keys(data: DataSettings) -> dict[str, str | None]:
    return {
        "energy_key": data.energy_key,
        "forces_key": data.forces_key,
        "stress_key": data.stress_key,
    }


def reference_energy_options(settings: TrainSettings) -> dict:
    """The reference-energy arguments of
    :class:`~mlip_eqx.data.GraphDatasetBuilder` for a job without a
    pretrained model: the given E0s (``settings.data.atomic_energies``, or the
    network config's {Z: eV} ``atomic_energies`` map, which must then agree)
    and the isolated atoms of ``settings.data.isolated_atoms``.

    Raises:
        ConfigError: The two given maps differ.
        AtomicEnergiesError: The map is malformed or its file unreadable.
    """
    data = settings.data
    options: dict = {}
    given = None
    if data.atomic_energies is not None:
        given, source = parse_atomic_energies(data.atomic_energies)
        options.update(atomic_energies=given, atomic_energies_source=source)
    model_map = _network_atomic_energies(settings.model)
    if model_map is not None:
        model_map = atomic_energies_by_number(model_map, "model.atomic_energies")
        if given is not None and given != model_map:
            raise ConfigError(
                f"data.atomic_energies ({data.atomic_energies}) and the "
                f"model's atomic_energies ({model_map}) differ: give the reference "
                "energies once (data.atomic_energies; the network then takes them "
                "from the DatasetInfo)."
            )
        if given is None:
            options.update(
                atomic_energies=model_map,
                atomic_energies_source="given (model.atomic_energies)",
            )
    if data.isolated_atoms is not None:
        reader = reader_for_files(
            [data.isolated_atoms], required_labels=("energy",), **_label_keys(data)
        )
        options["isolated_atoms"] = reader.load()[0]
    return options


def _network_atomic_energies(model: Config) -> dict[int, float] | None:
    """The {Z: eV} map of a network config's ``atomic_energies`` (the field of
    this library's networks), or None if it has none or chooses otherwise."""
    fields = {field.name for field in dataclasses.fields(model)}
    if "atomic_energies" not in fields:
        return None
    choice = model.atomic_energies
    return choice if isinstance(choice, dict) else None


def build_datasets(
    settings: TrainSettings, dataset_info: DatasetInfo | None = None
) -> Splits:
    """Reads the structures and builds the graph datasets.

    Args:
        settings: The job's settings.
        dataset_info: The DatasetInfo of a pretrained model to use (its E0
            refitted if ``settings.fine_tuning`` says so; with a new head, one
            more data set for the new data, with data set 0's E0, or, with
            ``refit_atomic_energies``, E0 fitted to the new data); None:
            computed from the training set, with the E0s of
            :func:`reference_energy_options` (least squares without them).

    Returns:
        ``(train_set, validation_set, test_set, dataset_info)``.

    Raises:
        PreprocessedDataError: A preprocessed directory whose DatasetInfo is not
            the pretrained model's.
        ConfigError: Reference energies given with a pretrained model's info.
    """
    if settings.data.preprocessed is not None:
        return _preprocessed_datasets(settings, dataset_info)
    data = settings.data
    if dataset_info is None:
        reference_energies = reference_energy_options(settings)
    elif data.atomic_energies is not None or data.isolated_atoms is not None:
        raise ConfigError(
            "data.atomic_energies and data.isolated_atoms: a pretrained model "
            "brings its reference energies (E0); to fit new ones to the new data, "
            "use fine_tuning.refit_atomic_energies."
        )
    else:
        reference_energies = {}
    fine_tuning = settings.fine_tuning
    new_dataset_idx = 0
    refit: bool | set[int] = fine_tuning.refit_atomic_energies
    if dataset_info is not None and fine_tuning.new_head is not None:
        new_dataset_idx = dataset_info.num_datasets
        dataset_info = dataset_info.with_new_dataset(fine_tuning.new_head)
        # The new head starts with head 0's E0; refitting concerns it alone.
        refit = {new_dataset_idx} if refit else False
    builder = GraphDatasetBuilder(
        job_reader(settings, new_dataset_idx),
        settings.graph_dataset,
        dataset_info,
        refit_atomic_energies=refit,
        **reference_energies,
    )
    builder.prepare_datasets()
    train_set, validation_set, test_set = builder.get_splits()
    _log_sizes("Structures", train_set, validation_set, test_set)
    return train_set, validation_set, test_set, builder.dataset_info


def _preprocessed_datasets(
    settings: TrainSettings, dataset_info: DatasetInfo | None
) -> Splits:
    """The datasets of ``settings.data.preprocessed``, read lazily."""
    directory = settings.data.preprocessed
    train_set, validation_set, test_set, stored_info = load_preprocessed(
        directory, settings.graph_dataset
    )
    if dataset_info is not None and stored_info != dataset_info:
        raise PreprocessedDataError(
            f"{directory}: its DatasetInfo is not the pretrained model's; "
            "preprocess the data for fine-tuning with the model's DatasetInfo "
            "(mlip_eqx.data.preprocess.preprocess(..., dataset_info=))."
        )
    _log_sizes(f"Preprocessed data {directory}", train_set, validation_set, test_set)
    return train_set, validation_set, test_set, stored_info


def _log_sizes(what: str, *splits: GraphDataset) -> None:
    train, validation, test = (len(split.graphs) for split in splits)
    logger.info(
        "%s: %d train, %d validation, %d test structures.",
        what,
        train,
        validation,
        test,
    )
