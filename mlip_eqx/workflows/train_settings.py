"""The settings of a training job: the library's own configs, composed, with
their JSON/YAML form (``config.json`` of every run)."""

import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Literal

import yaml

from mlip_eqx.data.atomic_energies import (
    is_json_map,
    map_as_json_text,
    parse_atomic_energies,
)
from mlip_eqx.data.graph_dataset_builder import GraphDatasetBuilderConfig
from mlip_eqx.data.readers.config_type_weights import parse_config_type_weights
from mlip_eqx.models.registry import get_network_class, registered_network_names
from mlip_eqx.training.fine_tuning import FineTuningConfig
from mlip_eqx.training.optimizer_config import OptimizerConfig
from mlip_eqx.training.training_loop_config import TrainingLoopConfig
from mlip_eqx.utils.config import (
    Config,
    ConfigError,
    NonNegativeFloat,
    PositiveInt,
    UnknownFieldsError,
    config_from_dict,
    config_to_dict,
)

TrackerName = Literal["tensorboard", "wandb", "mlflow"]


@dataclasses.dataclass(frozen=True)
class DataSettings(Config):
    """Where the structures come from, and how to read their labels.

    Attributes:
        train: Training files (extxyz or HDF5); none: the built-in demo data set.
        valid: Validation files (none: the job holds out
            ``graph_dataset.validation_fraction`` of the training set).
        test: Test files (none: the final evaluation uses the validation set).
        demo_structures: Size of the demo data set (when no files are given).
        preprocessed: A directory written by ``mlip-eqx preprocess`` to train on
            instead of files (read lazily: the graphs need not fit in memory).
        energy_key: The energy's key (extxyz info key, HDF5 attribute), e.g.
            "REF_energy"; none: "REF_energy", then "energy".
        forces_key: The forces' key (extxyz arrays key, HDF5 dataset); none:
            "REF_forces", then "forces".
        stress_key: The stress's key (extxyz info key, HDF5 dataset); none:
            "REF_stress", then "stress".
        isolated_atoms: A file of isolated atoms (one atom per frame, no
            periodic images within the cutoff) whose energies are the reference
            energies (E0) of their elements. Such frames in the training files
            are isolated atoms too; they are never training structures.
        atomic_energies: Reference energies (E0) in eV as a JSON map, e.g.
            '{"H": -13.57, "C": -1025.3}' (element symbols or atomic numbers), or
            the path of a JSON file holding one; they win over isolated atoms.
            Without E0s from isolated atoms or here, they are fitted by least
            squares.
        config_type_weights: Loss weight per config_type (the extxyz info key
            "config_type") as a JSON map, e.g. '{"MD": 1, "NEB": 10}';
            structures of other or no config_type weigh 1.
    """

    train: tuple[str, ...] = ()
    valid: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    demo_structures: PositiveInt = 300
    preprocessed: str | None = None
    energy_key: str | None = None
    forces_key: str | None = None
    stress_key: str | None = None
    isolated_atoms: str | None = None
    atomic_energies: str | None = dataclasses.field(
        default=None, metadata={"convert": map_as_json_text}
    )
    config_type_weights: str | None = dataclasses.field(
        default=None, metadata={"convert": map_as_json_text}
    )

    def __check_init__(self) -> None:
        if self.preprocessed is not None and (self.train or self.valid or self.test):
            raise ConfigError(
                "DataSettings: give data files or a preprocessed directory, not both."
            )
        reading = [
            name
            for name in _READING_SETTINGS
            if getattr(self, name) is not None  # every one is a field
        ]
        if self.preprocessed is not None and reading:
            raise ConfigError(
                f"DataSettings: {', '.join(reading)} concern reading files; "
                "preprocessed data was read when it was preprocessed."
            )
        try:
            if self.atomic_energies is not None and is_json_map(self.atomic_energies):
                parse_atomic_energies(self.atomic_energies)
            if self.config_type_weights is not None:
                parse_config_type_weights(self.config_type_weights)
        except ValueError as error:
            raise ConfigError(f"DataSettings: {error}") from None


# The settings of DataSettings that only reading files uses.
_READING_SETTINGS = (
    "energy_key",
    "forces_key",
    "stress_key",
    "isolated_atoms",
    "atomic_energies",
    "config_type_weights",
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
    """Settings of a training job (units: Å, eV): the library's configs.

    Attributes:
        output_dir: Where everything is written.
        data: The structure files.
        graph_dataset: Graph construction and batching.
        model_type: The network's registered name (e.g. "Mace"; any case).
        model: The network's ``Config`` (of ``model_type``).
        predict_stress: Predict (and train on, with a stress weight) the stress.
        seed: Seed of the initial parameters.
        loss: The loss and its weights.
        optimizer: The default MLIP optimizer's settings.
        training_loop: Epochs, EMA, evaluation.
        fine_tuning: Start from a pretrained model: frozen parts, refitted
            reference energies, replayed data.
        resume: Continue from the output directory's latest checkpoint.
        overwrite: Replace the checkpoints and metrics of an earlier run in the
            output directory (without ``resume`` or ``overwrite``, a directory
            with checkpoints is refused).
        plots: Write learning curves and parity plots.
        all_devices: Train on all local devices (data parallel) instead of the
            first; a multi-process run always uses every device of every process.
        loggers: Experiment trackers that also receive every record
            ("tensorboard", "wandb", "mlflow"; each needs its extra).
        dtype: The floating-point dtype of the parameters and of the computation
            ("float64" turns ``jax_enable_x64`` on for the whole process; the
            model zip records it). A run resumes only in its own dtype.
    """

    output_dir: str
    data: DataSettings
    graph_dataset: GraphDatasetBuilderConfig
    model_type: str
    model: Config
    predict_stress: bool
    seed: int
    loss: LossSettings
    optimizer: OptimizerConfig
    training_loop: TrainingLoopConfig
    fine_tuning: FineTuningConfig
    resume: bool
    overwrite: bool
    plots: bool
    all_devices: bool = False
    loggers: tuple[TrackerName, ...] = ()
    dtype: Literal["float32", "float64"] = "float32"

    def __check_init__(self) -> None:
        if self.resume and self.overwrite:
            raise ConfigError(
                "TrainSettings: resume and overwrite exclude each other (resuming "
                "needs the checkpoints that overwriting deletes)."
            )
        model_class = get_network_class(self.model_type).Config
        if type(self.model) is not model_class:
            raise ConfigError(
                f"TrainSettings.model: a {model_class.__name__} is needed for "
                f"model_type {self.model_type!r}, got {type(self.model).__name__}."
            )


def default_train_settings() -> TrainSettings:
    """The main job's settings: MACE (32 channels, l_max 2, correlation 3, 2
    layers, cutoff 5 Å) for 12 epochs on the demo data, batch size 4, constant
    learning rate 0.01, energy weight 100 and forces weight 25, 10 % of the
    training set held out for validation.

    Chosen by measurement on the demo set (2 cores; the numbers are in the
    README): batch size 8 with energy weight 1 left the energies at 36 meV/atom.
    """
    mace = get_network_class("Mace")
    return TrainSettings(
        output_dir="mlip_eqx_run",
        data=DataSettings(),
        graph_dataset=GraphDatasetBuilderConfig(
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
        training_loop=TrainingLoopConfig(num_epochs=12, random_seed=42),
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
    defaults = default_train_settings()
    merged = deep_merge(settings_to_dict(defaults), values)
    fields = {field.name for field in dataclasses.fields(TrainSettings)}
    unknown = sorted(set(merged) - fields)
    if unknown:
        raise UnknownFieldsError(f"TrainSettings: unknown settings {unknown}.")
    merged["model_type"] = registered_network_name(merged["model_type"])
    # The default model section belongs to the default network.
    if merged["model_type"] != defaults.model_type:
        merged["model"] = values.get("model", {})
    model_class = get_network_class(merged["model_type"]).Config
    model = config_from_dict(model_class, merged["model"])
    return config_from_dict(TrainSettings, {**merged, "model": model})


def read_settings_file(path: str | os.PathLike) -> dict:
    """The nested settings of a JSON or YAML (``.yaml``, ``.yml``) file.

    Raises:
        ConfigError: The file cannot be read or parsed, or holds no mapping
            (naming the file).
    """
    path = Path(path)
    try:
        text = path.read_text()
        if path.suffix.lower() in (".yaml", ".yml"):
            values = yaml.safe_load(text)
        else:
            values = json.loads(text)
    except (OSError, json.JSONDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"Cannot read the config file {path}: {error}") from error
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of settings by section.")
    return values


def registered_network_name(model_type: object) -> str:
    """The registered network name that ``model_type`` spells in any case (e.g.
    "Nequip" for "nequip").

    Raises:
        ConfigError: No network is registered under that name.
    """
    names = {name.lower(): name for name in registered_network_names()}
    if isinstance(model_type, str) and model_type.lower() in names:
        return names[model_type.lower()]
    raise ConfigError(
        f"TrainSettings.model_type: {model_type!r} is not a registered network "
        f"(registered: {', '.join(registered_network_names())})."
    )


def deep_merge(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` applied, section by section (a copy)."""
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
