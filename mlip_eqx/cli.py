"""The ``mlip-eqx`` command: ``mlip-eqx train`` trains a force field (demo data by
default); ``mlip-eqx evaluate`` measures a trained model on structures;
``mlip-eqx simulate`` runs MD or a minimisation with it.

The settings are the library's own configs, composed (:class:`TrainSettings`):
``GraphDatasetBuilder.Config``, the network's ``Config``, ``OptimizerConfig`` and
``TrainingLoop.Config``, plus the data files, the loss and the job's switches. A
JSON config file gives any of their fields, nested by section as in the
``config.json`` that every run writes; flags set the common ones (flags given on
the command line win). Everything is written to the output directory: checkpoints
(``model/``), ``dataset_info.json``, ``model.zip``, ``metrics.jsonl``,
``config.json`` (the settings used) and PNG plots.

The steps of :func:`train` are public functions, for scripts that change one of
them: :func:`build_datasets`, :func:`build_force_field`, :func:`build_loss`,
:func:`build_io_handler`, :func:`write_outputs`.
"""

import argparse
import copy
import dataclasses
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Literal

from rich.logging import RichHandler

from mlip_eqx.utils.config import (
    Config,
    ConfigError,
    NonNegativeFloat,
    PositiveInt,
    config_from_dict,
    config_to_dict,
)
from mlip_eqx.utils.files import atomic_write, remove_stale_temporaries

logger = logging.getLogger("mlip_eqx")


def _user_facing_errors() -> tuple[type[Exception], ...]:
    """Errors of bad input or a bad output directory: printed as a message."""
    from mlip_eqx.checkpoint.format import (
        CheckpointRestorationError,
        IncompatibleCheckpointError,
    )
    from mlip_eqx.data.chemical_system import InvalidStructureError
    from mlip_eqx.data.graph_dataset import StructureTooLargeError
    from mlip_eqx.data.graph_dataset_builder import UnseenElementsError
    from mlip_eqx.data.graph_shards import InvalidShardError
    from mlip_eqx.data.preprocess import PreprocessedDataError
    from mlip_eqx.data.readers.labels import MissingLabelError
    from mlip_eqx.training.training_io_handler import (
        CheckpointSaveError,
        DirectoryLockedError,
        ExistingCheckpointsError,
    )

    return (
        CheckpointRestorationError,
        CheckpointSaveError,
        ConfigError,
        DirectoryLockedError,
        ExistingCheckpointsError,
        FileExistsError,
        FileNotFoundError,
        IncompatibleCheckpointError,
        InvalidShardError,
        InvalidStructureError,
        PreprocessedDataError,
        MissingLabelError,
        StructureTooLargeError,
        UnseenElementsError,
    )


@dataclasses.dataclass(frozen=True)
class DataSettings(Config):
    """Where the structures come from.

    Attributes:
        train: Training files (extxyz or HDF5); none: the built-in demo data set.
        valid: Validation files (none: ``mlip-eqx train`` holds out 10 % of the
            training set, ``graph_dataset.validation_fraction``; the library's
            own default holds out nothing).
        test: Test files (none: the final evaluation uses the validation set).
        demo_structures: Size of the demo data set (when no files are given).
        preprocessed: A directory written by ``mlip-eqx preprocess`` to train on
            instead of files (read lazily: the graphs need not fit in memory).
    """

    train: tuple[str, ...] = ()
    valid: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    demo_structures: PositiveInt = 300
    preprocessed: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.preprocessed is not None and (self.train or self.valid or self.test):
            raise ConfigError(
                "DataSettings: give data files or a preprocessed directory, not both."
            )


@dataclasses.dataclass(frozen=True)
class LossSettings(Config):
    """The training loss: MSE or Huber with constant weights.

    Attributes:
        kind: "mse" (``MSELoss``) or "huber" (``HuberLoss``).
        energy_weight: Weight of the energy-per-atom term.
        forces_weight: Weight of the forces term.
        stress_weight: Weight of the stress term (needs ``predict_stress``).
        extended_metrics: Compute the extended evaluation metrics.
    """

    kind: Literal["mse", "huber"] = "mse"
    energy_weight: NonNegativeFloat = 1.0
    forces_weight: NonNegativeFloat = 25.0
    stress_weight: NonNegativeFloat = 0.0
    extended_metrics: bool = False


@dataclasses.dataclass(frozen=True)
class TrainSettings(Config):
    """Settings of ``mlip-eqx train`` (units: Å, eV): the library's configs.

    Attributes:
        output_dir: Where everything is written.
        data: The structure files.
        graph_dataset: Graph construction and batching.
        model_type: The network's registered name (e.g. "Mace").
        model: The network's ``Config`` (of ``model_type``).
        predict_stress: Predict (and train on, with a stress weight) the stress.
        seed: Seed of the initial parameters.
        loss: The loss and its weights.
        optimizer: The default MLIP optimizer's settings.
        training_loop: Epochs, EMA, evaluation.
        fine_tuning: Start from a pretrained model (``FineTuningConfig``):
            frozen parts, refitted reference energies, replayed data.
        resume: Continue from the output directory's latest checkpoint.
        overwrite: Replace the checkpoints and metrics of an earlier run in the
            output directory (without ``resume`` or ``overwrite``, a directory
            with checkpoints is refused).
        plots: Write learning curves and parity plots.
        all_devices: Train on all local devices (data parallel) instead of the
            first; a multi-process run always uses every device of every process.
    """

    output_dir: str
    data: DataSettings
    graph_dataset: Config
    model_type: str
    model: Config
    predict_stress: bool
    seed: int
    loss: LossSettings
    optimizer: Config
    training_loop: Config
    fine_tuning: Config
    resume: bool
    overwrite: bool
    plots: bool
    all_devices: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resume and self.overwrite:
            raise ConfigError(
                "TrainSettings: resume and overwrite exclude each other (resuming "
                "needs the checkpoints that overwriting deletes)."
            )


def default_train_settings() -> TrainSettings:
    """The main job's settings: MACE (32 channels, l_max 2, correlation 3, 2
    layers, cutoff 5 Å) for 12 epochs on the demo data, batch size 4, constant
    learning rate 0.01, energy weight 100 and forces weight 25.

    Chosen by measurement on the demo set (2 cores; the numbers are in the
    README): batch size 8 with energy weight 1 left the energies at 36 meV/atom.
    """
    from mlip_eqx.data import GraphDatasetBuilder
    from mlip_eqx.models.registry import get_network_class
    from mlip_eqx.training import OptimizerConfig, TrainingLoop
    from mlip_eqx.training.fine_tuning import FineTuningConfig

    mace = get_network_class("Mace")
    return TrainSettings(
        output_dir="mlip_eqx_run",
        data=DataSettings(),
        graph_dataset=GraphDatasetBuilder.Config(
            graph_cutoff_angstrom=5.0, batch_size=4, validation_fraction=0.1
        ),
        model_type="Mace",
        model=mace.Config(num_channels=32, l_max=2, correlation=3, num_layers=2),
        predict_stress=False,
        seed=42,
        loss=LossSettings(energy_weight=100.0),
        optimizer=OptimizerConfig(
            init_learning_rate=0.01,
            peak_learning_rate=0.01,
            final_learning_rate=0.01,
            warmup_steps=0,
        ),
        training_loop=TrainingLoop.Config(num_epochs=12, random_seed=42),
        fine_tuning=FineTuningConfig(),
        resume=False,
        overwrite=False,
        plots=True,
    )


def settings_to_dict(settings: TrainSettings) -> dict:
    """The settings as nested JSON values (the format of ``config.json``)."""
    return config_to_dict(settings)


def settings_from_dict(values: dict) -> TrainSettings:
    """Settings from nested values (e.g. ``config.json``); every section missing
    or partial is completed from :func:`default_train_settings`.

    Raises:
        ConfigError: Naming the section and field of an unknown key or a bad value.
    """
    from mlip_eqx.data import GraphDatasetBuilder
    from mlip_eqx.models.registry import get_network_class
    from mlip_eqx.training import OptimizerConfig, TrainingLoop
    from mlip_eqx.training.fine_tuning import FineTuningConfig

    defaults = default_train_settings()
    merged = _deep_merge(settings_to_dict(defaults), values)
    sections = {
        "data": DataSettings,
        "graph_dataset": GraphDatasetBuilder.Config,
        "loss": LossSettings,
        "optimizer": OptimizerConfig,
        "training_loop": TrainingLoop.Config,
        "fine_tuning": FineTuningConfig,
    }
    fields = {field.name for field in dataclasses.fields(TrainSettings)}
    unknown = sorted(set(merged) - fields)
    if unknown:
        raise ConfigError(f"TrainSettings: unknown settings {unknown}.")
    try:
        network_class = get_network_class(_registered_name(merged["model_type"]))
    except ValueError as error:
        raise ConfigError(f"TrainSettings.model_type: {error}") from error
    merged["model_type"] = network_class.__name__
    # The default model section belongs to the default network.
    same_network = merged["model_type"] == defaults.model_type
    model_values = merged["model"] if same_network else values.get("model", {})
    built = {
        name: config_from_dict(config_class, merged[name])
        for name, config_class in sections.items()
    }
    built["model"] = config_from_dict(network_class.Config, model_values)
    scalars = {name: merged[name] for name in fields - set(built)}
    return TrainSettings(**built, **scalars)


def _registered_name(model_type: object) -> object:
    """The registered network name that ``model_type`` spells in any case (e.g.
    "nequip" for "Nequip"); other values are returned unchanged."""
    from mlip_eqx.models.registry import registered_network_names

    if not isinstance(model_type, str):
        return model_type
    names = {name.lower(): name for name in registered_network_names()}
    return names.get(model_type.lower(), model_type)


def _deep_merge(base: dict, changes: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclasses.dataclass(frozen=True)
class _Flag:
    """A command-line flag that sets one or more settings (dotted paths)."""

    name: str
    paths: tuple[str, ...]
    help: str
    value_type: type | None = None  # for settings whose default is None


_FLAGS = (
    _Flag("output-dir", ("output_dir",), "output directory"),
    _Flag("train", ("data.train",), "training data files (extxyz or HDF5)"),
    _Flag("valid", ("data.valid",), "validation data files"),
    _Flag("test", ("data.test",), "test data files"),
    _Flag("demo-structures", ("data.demo_structures",), "size of the demo data set"),
    _Flag(
        "preprocessed",
        ("data.preprocessed",),
        "a directory of mlip-eqx preprocess to train on (instead of files)",
        str,
    ),
    _Flag("epochs", ("training_loop.num_epochs",), "number of epochs"),
    _Flag("batch-size", ("graph_dataset.batch_size",), "structures per batch"),
    _Flag("cutoff", ("graph_dataset.graph_cutoff_angstrom",), "graph cutoff in Å"),
    _Flag(
        "max-batch-shapes",
        ("graph_dataset.max_batch_shapes",),
        "padded batch shapes per split, at most (one compilation each)",
    ),
    _Flag("model", ("model_type",), "network: mace, nequip or visnet (any case)"),
    _Flag("num-channels", ("model.num_channels",), "channels of the network"),
    _Flag("l-max", ("model.l_max",), "highest degree of the spherical harmonics"),
    _Flag("correlation", ("model.correlation",), "body order of MACE's product"),
    _Flag("num-layers", ("model.num_layers",), "message-passing layers"),
    _Flag("predict-stress", ("predict_stress",), "predict and train on the stress"),
    _Flag("loss", ("loss.kind",), "mse or huber"),
    _Flag("energy-weight", ("loss.energy_weight",), "weight of the energy term"),
    _Flag("forces-weight", ("loss.forces_weight",), "weight of the forces term"),
    _Flag("stress-weight", ("loss.stress_weight",), "weight of the stress term"),
    _Flag(
        "learning-rate",
        (
            "optimizer.init_learning_rate",
            "optimizer.peak_learning_rate",
            "optimizer.final_learning_rate",
        ),
        "constant learning rate",
    ),
    _Flag("warmup-steps", ("optimizer.warmup_steps",), "learning-rate warm-up steps"),
    _Flag("ema-decay", ("training_loop.ema_decay",), "decay of the parameter EMA"),
    _Flag(
        "batches-per-step",
        ("training_loop.batches_per_step",),
        "batches per step over all devices (a multiple of their number; fixed, "
        "the training is the same on any number of devices)",
        int,
    ),
    _Flag(
        "seed",
        ("seed", "training_loop.random_seed"),
        "seed of the initial parameters and the training state",
    ),
    _Flag("resume", ("resume",), "continue from the latest checkpoint"),
    _Flag(
        "overwrite",
        ("overwrite",),
        "replace the checkpoints and metrics of an earlier run",
    ),
    _Flag("plots", ("plots",), "write learning curves and parity plots"),
    _Flag(
        "all-devices",
        ("all_devices",),
        "train on all local devices (data parallel), not only the first",
    ),
    _Flag(
        "init-from",
        ("fine_tuning.init_from",),
        "fine-tune: a model.zip or a training run's output directory",
        str,
    ),
    _Flag(
        "refit-atomic-energies",
        ("fine_tuning.refit_atomic_energies",),
        "fine-tune: fit new reference energies to the training data",
    ),
    _Flag(
        "freeze",
        ("fine_tuning.frozen",),
        "fine-tune: freeze parameters whose path contains one of these texts",
    ),
    _Flag(
        "train-last-layers",
        ("fine_tuning.train_last_layers",),
        "fine-tune: train only the last N layers and the readouts",
        int,
    ),
    _Flag(
        "replay",
        ("fine_tuning.replay_paths",),
        "fine-tune: pretraining data files to replay",
    ),
    _Flag(
        "replay-fraction",
        ("fine_tuning.replay_fraction",),
        "fine-tune: replay structures per new training structure",
    ),
    _Flag(
        "replay-weight",
        ("fine_tuning.replay_weight",),
        "fine-tune: loss weight of the replay structures",
    ),
    _Flag(
        "new-head",
        ("fine_tuning.new_head",),
        "fine-tune: a new readout head of this name for the new data",
        str,
    ),
    _Flag(
        "train-new-head-only",
        ("fine_tuning.train_new_head_only",),
        "fine-tune: train only the new head",
    ),
)


def _get_path(values: dict, path: str) -> Any:
    for key in path.split("."):
        values = values[key]
    return values


def _set_path(values: dict, path: str, value: Any) -> None:
    *sections, name = path.split(".")
    for key in sections:
        values = values.setdefault(key, {})
    values[name] = value


HEAD_HELP = (
    "the data set (readout head and reference energies) of a multi-head model "
    "to predict with, by name (default: data set 0)"
)


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """``--config`` and one flag per entry of ``_FLAGS``."""
    defaults = settings_to_dict(default_train_settings())
    parser.add_argument(
        "--config",
        type=Path,
        help="JSON file of settings, nested by section as in config.json",
    )
    for flag in _FLAGS:
        default = _get_path(defaults, flag.paths[0])
        dest = flag.name.replace("-", "_")
        where = ", ".join(flag.paths)
        if isinstance(default, list):
            parser.add_argument(
                f"--{flag.name}", dest=dest, nargs="+", help=f"{flag.help} ({where})"
            )
        elif isinstance(default, bool):
            parser.add_argument(
                f"--{flag.name}",
                dest=dest,
                action=argparse.BooleanOptionalAction,
                help=f"{flag.help} ({where}; default: {default})",
            )
        else:
            parser.add_argument(
                f"--{flag.name}",
                dest=dest,
                type=flag.value_type or type(default),
                help=f"{flag.help} ({where}; default: {default})",
            )


def _add_distributed_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of a multi-process run (each also an environment variable)."""
    from mlip_eqx.training import distributed

    group = parser.add_argument_group(
        "multi-process training (jax.distributed)",
        "Start one process per host (or per GPU) with the same settings; all "
        "three flags, or their environment variables, are needed.",
    )
    group.add_argument(
        "--coordinator",
        help="host:port of process 0, reachable from every process "
        f"(or {distributed.COORDINATOR_VARIABLE})",
    )
    group.add_argument(
        "--num-processes",
        type=int,
        help=f"number of processes (or {distributed.NUM_PROCESSES_VARIABLE})",
    )
    group.add_argument(
        "--process-id",
        type=int,
        help=f"this process's index from 0 (or {distributed.PROCESS_ID_VARIABLE})",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlip-eqx", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="train a force field",
        description="Train a force field on the built-in demo data or on "
        "extxyz/HDF5 files.",
    )
    _add_setting_flags(train)
    _add_distributed_flags(train)
    preprocess = commands.add_parser(
        "preprocess",
        help="build the graphs of a data set once and store them as HDF5 shards",
        description="Reads the data (the train command's data and graph "
        "settings: --train/--valid/--test, --cutoff, --config, ...), builds the "
        "graphs and the DatasetInfo, and writes them to --output-dir as sharded "
        "HDF5, for mlip-eqx train --preprocessed DIR.",
    )
    _add_setting_flags(preprocess)
    preprocess.add_argument(
        "--shard-size", type=int, default=10_000, help="structures per shard file"
    )
    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a trained model on structures",
        description="Errors of a model on labelled structures (energy per atom, "
        "forces, stress when labelled), its predictions as extxyz (MLIP_energy, "
        "MLIP_forces, MLIP_stress) and parity plots.",
    )
    evaluate.add_argument("--model", type=Path, required=True, help="model.zip")
    evaluate.add_argument(
        "--data", nargs="+", required=True, help="extxyz or HDF5 files"
    )
    evaluate.add_argument(
        "--output-dir",
        type=Path,
        help="where to write (default: evaluation/ next to the model)",
    )
    evaluate.add_argument(
        "--batch-size", type=int, default=16, help="structures per batch"
    )
    evaluate.add_argument("--head", help=HEAD_HELP)
    evaluate.add_argument(
        "--plots",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write parity plots (default: yes)",
    )
    simulate = commands.add_parser(
        "simulate",
        help="run molecular dynamics or a minimisation with a trained model",
        description="MD (NVT Langevin or NVE) or an energy minimisation of the "
        "first frame of a structure file, with the JAX-MD or the ASE engine; writes "
        "the trajectory as extxyz and a PNG of energy and temperature.",
    )
    simulate.add_argument("--model", type=Path, required=True, help="model.zip")
    simulate.add_argument(
        "--structure", type=Path, required=True, help="structure file (extxyz, ...)"
    )
    simulate.add_argument("--steps", type=int, default=1000, help="number of steps")
    simulate.add_argument("--head", help=HEAD_HELP)
    simulate.add_argument(
        "--temperature", type=float, default=300.0, help="temperature in K"
    )
    simulate.add_argument("--timestep", type=float, default=1.0, help="step in fs")
    simulate.add_argument(
        "--engine", choices=("jax-md", "ase"), default="jax-md", help="MD engine"
    )
    simulate.add_argument(
        "--integrator", choices=("nvt", "nve"), default="nvt", help="MD ensemble"
    )
    simulate.add_argument(
        "--friction", type=float, default=0.01, help="Langevin friction in 1/fs"
    )
    simulate.add_argument(
        "--snapshot-interval", type=int, default=10, help="steps between snapshots"
    )
    simulate.add_argument("--seed", type=int, default=42, help="velocity seed")
    simulate.add_argument(
        "--minimise",
        action="store_true",
        help="minimise the energy (to max force 0.01 eV/Å) instead of MD",
    )
    simulate.add_argument(
        "--output", type=Path, default=Path("trajectory.xyz"), help="trajectory"
    )
    simulate.add_argument(
        "--plots",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write the energy and temperature plot (default: yes)",
    )
    return parser


def _settings(arguments: argparse.Namespace) -> TrainSettings:
    """Defaults, then the config file, then the flags given."""
    values: dict = {}
    if arguments.config is not None:
        try:
            values = json.loads(arguments.config.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise SystemExit(
                f"Cannot read the config file {arguments.config}: {error}"
            ) from error
        if not isinstance(values, dict):
            raise SystemExit(f"{arguments.config}: expected a JSON object.")
    for flag in _FLAGS:
        given = getattr(arguments, flag.name.replace("-", "_"))
        if given is not None:
            for path in flag.paths:
                _set_path(values, path, given)
    try:
        return settings_from_dict(values)
    except ConfigError as error:
        source = f"{arguments.config}: " if arguments.config is not None else ""
        raise SystemExit(f"{source}{error}") from error


def _reader(settings: TrainSettings, new_dataset_idx: int = 0):
    """The reader of the job's data: the new data in data set
    ``new_dataset_idx``, with the replayed data (data set 0) if any."""
    from mlip_eqx.data.demo import get_demo_dataset

    data = settings.data
    if not data.train:
        demo = get_demo_dataset(num_structures=data.demo_structures)
        paths = (
            (str(demo.train_path),),
            (str(demo.validation_path),),
            (str(demo.test_path),),
        )
    else:
        paths = data.train, data.valid, data.test
    reader_class = _reader_class([p for split in paths for p in split])
    labels = (
        ("energy", "forces", "stress")
        if settings.predict_stress
        else ("energy", "forces")
    )
    reader = reader_class(
        reader_class.Config(
            train_dataset_paths=list(paths[0]),
            valid_dataset_paths=list(paths[1]) or None,
            test_dataset_paths=list(paths[2]) or None,
            required_labels=labels,
        )
    )
    from mlip_eqx.data import DatasetIndexReader, ReplayReader

    if new_dataset_idx:
        reader = DatasetIndexReader(reader, new_dataset_idx)
    fine_tuning = settings.fine_tuning
    if not fine_tuning.replay_paths:
        return reader

    replay_class = _reader_class(list(fine_tuning.replay_paths))
    replay = replay_class(
        replay_class.Config(
            train_dataset_paths=list(fine_tuning.replay_paths),
            required_labels=labels,
        )
    )
    return ReplayReader(
        reader,
        replay,
        fine_tuning.replay_fraction,
        fine_tuning.replay_weight,
        seed=settings.graph_dataset.split_seed,
    )


def _reader_class(paths: list[str]):
    """The reader of these files: HDF5 (``.h5``, ``.hdf5``) or extxyz."""
    from mlip_eqx.data import ExtxyzReader, Hdf5Reader

    is_hdf5 = [Path(p).suffix.lower() in (".h5", ".hdf5") for p in paths]
    if any(is_hdf5) and not all(is_hdf5):
        raise SystemExit("Use either extxyz or HDF5 files, not both.")
    return Hdf5Reader if all(is_hdf5) else ExtxyzReader


def build_datasets(settings: TrainSettings, dataset_info=None):
    """Reads the structures and builds the graph datasets.

    Args:
        settings: The job's settings.
        dataset_info: The DatasetInfo of a pretrained model to use (its E0
            refitted if ``settings.fine_tuning`` says so; with a new head, one
            more data set for the new data, with data set 0's E0, or, with
            ``refit_atomic_energies``, E0 fitted to the new data); None:
            computed from the training set.

    Returns:
        ``(train_set, validation_set, test_set, dataset_info)``.
    """
    from mlip_eqx.data import GraphDatasetBuilder

    if settings.data.preprocessed is not None:
        return _preprocessed_datasets(settings, dataset_info)
    fine_tuning = settings.fine_tuning
    new_dataset_idx = 0
    refit: bool | set[int] = fine_tuning.refit_atomic_energies
    if dataset_info is not None and fine_tuning.new_head is not None:
        new_dataset_idx = dataset_info.num_datasets
        dataset_info = dataset_info.with_new_dataset(fine_tuning.new_head)
        # The new head starts with head 0's E0; refitting concerns it alone.
        refit = {new_dataset_idx} if refit else False
    builder = GraphDatasetBuilder(
        _reader(settings, new_dataset_idx),
        settings.graph_dataset,
        dataset_info,
        refit_atomic_energies=refit,
    )
    builder.prepare_datasets()
    train_set, validation_set, test_set = builder.get_splits()
    logger.info(
        "Structures: %d train, %d validation, %d test.",
        len(train_set.graphs),
        len(validation_set.graphs),
        len(test_set.graphs),
    )
    return train_set, validation_set, test_set, builder.dataset_info


def _preprocessed_datasets(settings: TrainSettings, dataset_info):
    """The datasets of ``settings.data.preprocessed``, read lazily."""
    from mlip_eqx.data.preprocess import load_preprocessed

    train_set, validation_set, test_set, stored_info = load_preprocessed(
        settings.data.preprocessed, settings.graph_dataset
    )
    if dataset_info is not None and stored_info != dataset_info:
        raise SystemExit(
            f"{settings.data.preprocessed}: its DatasetInfo is not the pretrained "
            "model's; preprocess the data for fine-tuning with the model's "
            "DatasetInfo (mlip_eqx.data.preprocess.preprocess(..., dataset_info=))."
        )
    logger.info(
        "Preprocessed data %s: %d train, %d validation, %d test structures.",
        settings.data.preprocessed,
        len(train_set.graphs),
        len(validation_set.graphs),
        len(test_set.graphs),
    )
    return train_set, validation_set, test_set, stored_info


def run_preprocess(settings: TrainSettings, shard_size: int) -> None:
    """Runs ``mlip-eqx preprocess``: the graphs of the job's data to
    ``settings.output_dir``."""
    from mlip_eqx.data.preprocess import preprocess

    info = preprocess(
        _reader(settings),
        settings.output_dir,
        settings.graph_dataset,
        shard_size=shard_size,
    )
    logger.info(
        "Preprocessed to %s (train with mlip-eqx train --preprocessed %s): %s",
        settings.output_dir,
        settings.output_dir,
        info,
    )


def load_pretrained(path: str | Path):
    """The force field of a model zip, or of a training run's output directory
    (the EMA parameters of its latest checkpoint, the architecture from its
    ``config.json`` and ``dataset_info.json``).

    Raises:
        SystemExit: Naming the path if it is neither.
    """
    from mlip_eqx.data import DatasetInfo
    from mlip_eqx.models.model_io import load_model_from_zip
    from mlip_eqx.models.params_loading import (
        load_parameters_from_checkpoint,
        saved_epochs,
    )

    path = Path(path)
    if path.is_file():
        return load_model_from_zip(None, path)
    run_files = [path / "config.json", path / "dataset_info.json"]
    if not (path.is_dir() and all(f.is_file() for f in run_files)):
        raise SystemExit(
            f"{path}: not a model zip nor a training run's output directory (with "
            "config.json, dataset_info.json and checkpoints in model/)."
        )
    settings = settings_from_dict(json.loads(run_files[0].read_text()))
    dataset_info = DatasetInfo.from_dict(json.loads(run_files[1].read_text()))
    force_field = build_force_field(settings, dataset_info)
    try:
        epochs = saved_epochs(path)
    except FileNotFoundError:
        epochs = []
    if not epochs:
        raise SystemExit(f"{path}: the run has no checkpoint yet.")
    epoch = epochs[-1]
    params = load_parameters_from_checkpoint(
        path, force_field.params, epoch, load_ema_params=True
    )
    logger.info("Pretrained model: %s, epoch %d (EMA parameters).", path, epoch)
    return force_field.with_params(params)


def pretrained_settings(settings: TrainSettings, pretrained) -> TrainSettings:
    """The settings with the pretrained model's architecture and cutoff (a
    fine-tuning run trains that model, whatever the model section said)."""
    return dataclasses.replace(
        settings,
        model_type=type(pretrained.network).__name__,
        model=pretrained.config,
        # An element the model lacks is an error, not a dropped structure.
        graph_dataset=dataclasses.replace(
            settings.graph_dataset,
            graph_cutoff_angstrom=pretrained.cutoff_distance,
            strict_elements=True,
        ),
    )


def build_force_field(settings: TrainSettings, dataset_info):
    """The network of ``settings.model_type`` with fresh parameters."""
    from mlip_eqx.models import ForceField
    from mlip_eqx.models.registry import get_network_class

    network = get_network_class(settings.model_type)(settings.model, dataset_info)
    return ForceField.from_mlip_network(
        network, predict_stress=settings.predict_stress, seed=settings.seed
    )


def build_loss(settings: TrainSettings):
    """The loss of ``settings.loss`` (constant weights)."""
    import optax

    from mlip_eqx.models.loss import HuberLoss, MSELoss

    loss_class = {"mse": MSELoss, "huber": HuberLoss}[settings.loss.kind]
    return loss_class(
        optax.constant_schedule(settings.loss.energy_weight),
        optax.constant_schedule(settings.loss.forces_weight),
        optax.constant_schedule(settings.loss.stress_weight),
        extended_metrics=settings.loss.extended_metrics,
    )


def build_io_handler(settings: TrainSettings):
    """Checkpoints in the output directory, a metrics table on the console and
    ``metrics.jsonl``.

    Returns:
        ``(io_handler, metrics_log)``; ``metrics_log`` is None in the processes
        other than 0 of a multi-process run.
    """
    from mlip_eqx.training import TrainingIOHandler
    from mlip_eqx.training.distributed import is_primary_process
    from mlip_eqx.training.training_loggers import (
        JsonLinesLogger,
        log_metrics_to_table,
    )

    output_dir = Path(settings.output_dir)
    io_handler = TrainingIOHandler(
        TrainingIOHandler.Config(
            local_model_output_dir=output_dir,
            restore_checkpoint_if_exists=settings.resume,
            restore_optimizer_state=settings.resume,
            clear_previous_checkpoints=settings.overwrite,
        )
    )
    if not is_primary_process():
        return io_handler, None  # process 0 writes the records
    metrics_log = JsonLinesLogger(output_dir / "metrics.jsonl")
    io_handler.attach_logger(log_metrics_to_table)
    io_handler.attach_logger(metrics_log)
    return io_handler, metrics_log


def write_outputs(settings: TrainSettings, best_model, final_set, metrics_log) -> None:
    """``model.zip`` and, if ``settings.plots``, learning curves and parity plots
    of ``final_set``."""
    from mlip_eqx.inference import predict_dataset
    from mlip_eqx.models.model_io import save_model_to_zip

    output_dir = Path(settings.output_dir)
    save_model_to_zip(output_dir / "model.zip", best_model)
    if settings.plots:
        from mlip_eqx.plotting import plot_learning_curves, plot_parity

        plot_learning_curves(metrics_log.records(), output_dir / "learning_curves.png")
        plot_parity(
            predict_dataset(best_model, final_set),
            output_dir / "parity_energy.png",
            output_dir / "parity_forces.png",
        )


def train(settings: TrainSettings) -> dict[str, float]:
    """Runs the training job; returns the test metrics (or validation if no test).

    After :func:`~mlip_eqx.training.distributed.initialize_distributed`, every
    process of the run calls it with the same settings: they train together on
    the devices of all, and process 0 writes the outputs.
    """
    import jax

    from mlip_eqx.training import TrainingLoop
    from mlip_eqx.training.distributed import is_primary_process
    from mlip_eqx.training.metric_units import for_display

    output_dir = Path(settings.output_dir)
    pretrained = None
    if settings.fine_tuning.init_from is not None:
        pretrained = load_pretrained(settings.fine_tuning.init_from)
        settings = pretrained_settings(settings, pretrained)
    # The data is read before anything is written: bad data changes nothing.
    train_set, validation_set, test_set, dataset_info = build_datasets(
        settings, None if pretrained is None else pretrained.dataset_info
    )
    # Locks the directory and refuses an earlier run's checkpoints unless asked.
    io_handler, metrics_log = build_io_handler(settings)
    primary = is_primary_process()
    if primary:
        remove_stale_temporaries(output_dir)
        with atomic_write(output_dir / "config.json", "w") as file:
            json.dump(settings_to_dict(settings), file, indent=2)
    force_field, optimizer = _model_and_optimizer(settings, dataset_info, pretrained)
    loop = TrainingLoop(
        train_set,
        validation_set,
        force_field,
        build_loss(settings),
        optimizer,
        settings.training_loop,
        io_handler=io_handler,
        should_parallelize=settings.all_devices or jax.process_count() > 1,
    )
    if loop.epoch_number == 0 and primary:
        # From scratch: records of an earlier attempt (killed before its first
        # checkpoint, or overwritten) would be repeated.
        metrics_log.clear()
    loop.run()
    final_set = test_set if test_set.graphs else validation_set
    results = loop.test(final_set)
    if not primary:
        return results
    # The parameters as this process's copy: the plots' predictions run here only.
    best_model = loop.best_model
    write_outputs(
        settings,
        best_model.with_params(jax.device_get(best_model.params)),
        final_set,
        metrics_log,
    )
    which = "test" if test_set.graphs else "validation"
    summary = ", ".join(
        f"{label} {value:.4g}"
        for label, value in (
            for_display(name, results[name])
            for name in ("mae_e_per_atom", "mae_f", "rmse_f", "mae_e", "rmse_e")
            if name in results
        )
    )
    written = "checkpoints (model/), model.zip, metrics.jsonl (eV units), config.json"
    if settings.plots:
        written += ", learning_curves.png, parity_energy.png, parity_forces.png"
    logger.info(
        "Done. %s set: %s. Written to %s: %s.", which, summary, output_dir, written
    )
    return results


def _model_and_optimizer(settings: TrainSettings, dataset_info, pretrained):
    """The force field to train (fresh, or the pretrained one with the run's
    DatasetInfo and stress setting) and the optimizer (freezing what
    ``settings.fine_tuning`` says)."""
    from mlip_eqx.models import ForceField
    from mlip_eqx.models.params_transfer import (
        with_dataset_info,
        with_new_readout_head,
    )
    from mlip_eqx.training import get_default_mlip_optimizer
    from mlip_eqx.training.fine_tuning import trainable_predicate
    from mlip_eqx.training.freezing import freeze_parameters
    from mlip_eqx.utils.trees import flatten_with_key_paths

    optimizer = get_default_mlip_optimizer(settings.optimizer)
    if pretrained is None:
        return build_force_field(settings, dataset_info), optimizer
    force_field = ForceField(pretrained.network, settings.predict_stress)
    new_head_index = None
    if dataset_info.num_datasets > pretrained.dataset_info.num_datasets:
        force_field = with_new_readout_head(force_field, dataset_info)
        new_head_index = dataset_info.num_datasets - 1
        logger.info(
            "Fine-tuning: new readout head %d (%r) for the new data, started as a "
            "copy of head 0.",
            new_head_index,
            settings.fine_tuning.new_head,
        )
    elif dataset_info != pretrained.dataset_info:
        force_field = with_dataset_info(force_field, dataset_info)
    if settings.fine_tuning.freezes:
        trainable = trainable_predicate(
            settings.fine_tuning, force_field.params, new_head_index
        )
        optimizer = freeze_parameters(optimizer, trainable, force_field.params)
        paths = [path for path, _ in flatten_with_key_paths(force_field.params)]
        logger.info(
            "Fine-tuning: %d of %d parameter arrays train.",
            sum(map(trainable, paths)),
            len(paths),
        )
    return force_field, optimizer


def evaluate(
    model_path: Path,
    data_paths: list[str],
    output_dir: Path | None = None,
    batch_size: int = 16,
    plots: bool = True,
    head: str | None = None,
) -> dict[str, float]:
    """Runs ``mlip-eqx evaluate``: prints the metrics table, writes
    ``predictions.extxyz``, ``metrics.json`` and parity plots to ``output_dir``
    (default: ``evaluation/`` next to the model). Returns the metrics (eV units).
    ``head`` names the data set of a multi-head model to predict with.
    """
    from mlip_eqx.evaluation import evaluate_force_field, write_predictions
    from mlip_eqx.models.model_io import load_model_from_zip
    from mlip_eqx.training.metric_units import for_display
    from mlip_eqx.training.training_loggers import print_metrics_table

    force_field = with_head(load_model_from_zip(None, model_path), head)
    reader_class = _reader_class(data_paths)
    reader = reader_class(
        reader_class.Config(train_dataset_paths=data_paths, required_labels=())
    )
    systems = reader.load()[0]
    result = evaluate_force_field(force_field, systems, batch_size)
    output_dir = output_dir or Path(model_path).parent / "evaluation"
    output_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(output_dir / "predictions.extxyz", systems, result.predictions)
    with atomic_write(output_dir / "metrics.json", "w") as file:
        json.dump(result.metrics, file, indent=2)
    written = ["predictions.extxyz", "metrics.json (eV units)"]
    if plots and result.metrics:
        from mlip_eqx.plotting import plot_parity

        plot_parity(
            result.predictions,
            output_dir / "parity_energy.png",
            output_dir / "parity_forces.png",
        )
        written += ["parity_energy.png", "parity_forces.png"]
    if result.metrics:
        print_metrics_table(f"Metrics of {len(systems)} structures", result.metrics)
        summary = ", ".join(
            f"{label} {value:.4g}"
            for label, value in (
                for_display(name, result.metrics[name])
                for name in ("mae_e_per_atom", "mae_f", "mae_stress")
                if name in result.metrics
            )
        )
    else:
        summary = "no labels, so no errors"
    logger.info(
        "Evaluated %d structures: %s. Written to %s: %s.",
        len(systems),
        summary,
        output_dir,
        ", ".join(written),
    )
    return result.metrics


def with_head(force_field, head: str | None):
    """The force field predicting with the data set called ``head`` (None: as
    it is).

    Raises:
        ValueError: The model has no data set of that name.
    """
    from mlip_eqx.models import InferenceContext

    if head is None:
        return force_field
    return force_field.replace_inference_context(InferenceContext(dataset_name=head))


def _join_distributed_run(arguments: argparse.Namespace):
    """Joins the multi-process run the flags or environment describe; returns its
    ``DistributedConfig``, or None for a single-process run."""
    from mlip_eqx.training.distributed import (
        DistributedConfig,
        DistributedSetupError,
        initialize_distributed,
        is_primary_process,
    )

    try:
        config = DistributedConfig.from_environment(
            arguments.coordinator, arguments.num_processes, arguments.process_id
        )
    except (DistributedSetupError, ConfigError) as error:
        raise SystemExit(f"mlip-eqx train: {error}") from error
    if config is None:
        return None
    initialize_distributed(config)
    if not is_primary_process():
        logger.setLevel(logging.WARNING)  # process 0 reports the progress
    return config


def _end_process_of_distributed_run(message: str) -> None:
    """Prints why a process of a multi-process run stops, and ends it at once
    (exit status 1): at a normal exit JAX would wait for the other processes
    (its shutdown barrier), for minutes if one of them has died."""
    print(message, file=sys.stderr, flush=True)
    logging.shutdown()
    sys.stdout.flush()
    os._exit(1)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlip-eqx`` console script."""
    arguments = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(show_path=False)] if sys.stderr.isatty() else None,
    )
    logger.setLevel(logging.INFO)
    if arguments.command == "train":
        settings = _settings(arguments)
        distributed = _join_distributed_run(arguments)
        try:
            train(settings)
        except _user_facing_errors() as error:
            message = (
                f"mlip-eqx train: {error}\n(Settings of the data pipeline, such as "
                "max_n_node, are fields of the graph_dataset section of a --config "
                "file; see config.json of a run.)"
            )
            if distributed is not None:
                _end_process_of_distributed_run(message)
            raise SystemExit(message) from error
        except Exception as error:
            if distributed is None:
                raise
            traceback.print_exception(error)
            _end_process_of_distributed_run(
                f"mlip-eqx train: process {distributed.process_id} of "
                f"{distributed.num_processes} stopped: {type(error).__name__}: "
                f"{str(error)[:500]}\nIf another process of the run failed or was "
                "stopped, this one cannot go on alone. Start all processes again "
                "with --resume to continue from the last checkpoint in "
                f"{Path(settings.output_dir) / 'model'}."
            )
    elif arguments.command == "preprocess":
        settings = _settings(arguments)
        try:
            run_preprocess(settings, arguments.shard_size)
        except (*_user_facing_errors(), ValueError) as error:
            raise SystemExit(f"mlip-eqx preprocess: {error}") from error
    elif arguments.command == "evaluate":
        try:
            evaluate(
                arguments.model,
                arguments.data,
                arguments.output_dir,
                arguments.batch_size,
                arguments.plots,
                arguments.head,
            )
        except (*_user_facing_errors(), ValueError) as error:
            raise SystemExit(f"mlip-eqx evaluate: {error}") from error
    elif arguments.command == "simulate":
        from mlip_eqx.simulation.command import simulate
        from mlip_eqx.simulation.exceptions import SimulationExplodedError
        from mlip_eqx.utils.config import ConfigError

        try:
            simulate(
                arguments.model,
                arguments.structure,
                arguments.output,
                engine=arguments.engine,
                num_steps=arguments.steps,
                temperature_kelvin=arguments.temperature,
                timestep_fs=arguments.timestep,
                minimise=arguments.minimise,
                integrator=arguments.integrator,
                snapshot_interval=arguments.snapshot_interval,
                friction=arguments.friction,
                seed=arguments.seed,
                plot=arguments.plots,
                head=arguments.head,
            )
        except (
            *_user_facing_errors(),
            ConfigError,
            SimulationExplodedError,
            ImportError,
            ValueError,
        ) as error:
            raise SystemExit(f"mlip-eqx simulate: {error}") from error
    return 0


if __name__ == "__main__":
    sys.exit(main())
