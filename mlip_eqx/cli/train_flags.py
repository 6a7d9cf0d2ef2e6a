"""The flags of a training job's settings (``mlip-eqx train`` and
``preprocess``): one per field of :class:`TrainSettings` and its sections, the
short aliases of the common ones, and ``--config`` (JSON or YAML)."""

import argparse
import dataclasses
from pathlib import Path

from mlip_eqx.cli.flags import (
    ConfigField,
    SettingFlag,
    add_flags,
    config_fields,
    given_settings,
)
from mlip_eqx.models.registry import get_network_class, registered_network_names
from mlip_eqx.utils.config import ConfigError
from mlip_eqx.workflows.train_settings import (
    TrainSettings,
    deep_merge,
    default_train_settings,
    read_settings_file,
    settings_from_dict,
)

# Short flag -> the settings it sets.
ALIASES = {
    "train": ("data.train",),
    "valid": ("data.valid",),
    "test": ("data.test",),
    "demo-structures": ("data.demo_structures",),
    "preprocessed": ("data.preprocessed",),
    "energy-key": ("data.energy_key",),
    "forces-key": ("data.forces_key",),
    "stress-key": ("data.stress_key",),
    "isolated-atoms": ("data.isolated_atoms",),
    "atomic-energies": ("data.atomic_energies",),
    "config-type-weights": ("data.config_type_weights",),
    "epochs": ("training_loop.num_epochs",),
    "batch-size": ("graph_dataset.batch_size",),
    "cutoff": ("graph_dataset.graph_cutoff_angstrom",),
    "max-batch-shapes": ("graph_dataset.max_batch_shapes",),
    "model": ("model_type",),
    "num-channels": ("model.num_channels",),
    "l-max": ("model.l_max",),
    "correlation": ("model.correlation",),
    "num-layers": ("model.num_layers",),
    "loss": ("loss.kind",),
    "energy-weight": ("loss.energy_weight",),
    "forces-weight": ("loss.forces_weight",),
    "stress-weight": ("loss.stress_weight",),
    "learning-rate": (
        "optimizer.init_learning_rate",
        "optimizer.peak_learning_rate",
        "optimizer.final_learning_rate",
    ),
    "warmup-steps": ("optimizer.warmup_steps",),
    "ema-decay": ("training_loop.ema_decay",),
    "batches-per-step": ("training_loop.batches_per_step",),
    "lr-plateau-patience": ("training_loop.lr_plateau_patience",),
    "lr-plateau-factor": ("training_loop.lr_plateau_factor",),
    "lr-plateau-min": ("training_loop.lr_plateau_min",),
    "early-stopping-patience": ("training_loop.early_stopping_patience",),
    "stage-two-epoch": ("training_loop.stage_two_epoch",),
    "stage-two-energy-weight": ("training_loop.stage_two_energy_weight",),
    "stage-two-forces-weight": ("training_loop.stage_two_forces_weight",),
    "stage-two-learning-rate": ("training_loop.stage_two_learning_rate",),
    "seed": ("seed", "training_loop.random_seed"),
    "init-from": ("fine_tuning.init_from",),
    "refit-atomic-energies": ("fine_tuning.refit_atomic_energies",),
    "freeze": ("fine_tuning.frozen",),
    "train-last-layers": ("fine_tuning.train_last_layers",),
    "replay": ("fine_tuning.replay_paths",),
    "replay-fraction": ("fine_tuning.replay_fraction",),
    "replay-weight": ("fine_tuning.replay_weight",),
    "new-head": ("fine_tuning.new_head",),
    "train-new-head-only": ("fine_tuning.train_new_head_only",),
    "logger": ("loggers",),
}


def train_settings_fields() -> list[ConfigField]:
    """Every field of :class:`TrainSettings` a flag can set, with the defaults
    of the main job; ``model.*`` are the fields of every registered network
    (the networks that have each are named in its description)."""
    defaults = default_train_settings()
    fields = [
        field
        for field in config_fields(TrainSettings, defaults)
        if not field.path.startswith("model.")
    ]
    model_fields: dict[str, tuple[ConfigField, list[str]]] = {}
    for name in registered_network_names():
        config = (
            defaults.model
            if name == defaults.model_type
            else get_network_class(name).Config()
        )
        for field in config_fields(type(config), config, "model."):
            model_fields.setdefault(field.path, (field, []))[1].append(name)
    for field, networks in model_fields.values():
        description = f"{field.description} [{', '.join(networks)}]"
        fields.append(dataclasses.replace(field, description=description))
    return fields


def add_train_settings_flags(parser: argparse.ArgumentParser) -> list[SettingFlag]:
    """``--config`` and the flags of :func:`train_settings_fields`."""
    parser.add_argument(
        "--config",
        type=Path,
        help="JSON or YAML file of settings, nested by section as in config.json "
        "(flags given win over it)",
    )
    return add_flags(parser, train_settings_fields(), ALIASES)


def train_settings_from_arguments(
    arguments: argparse.Namespace, flags: list[SettingFlag]
) -> TrainSettings:
    """The main job's defaults, then the config file, then the flags given.

    Raises:
        ConfigError: Naming the file (if any), section and field of a bad value.
    """
    values = read_settings_file(arguments.config) if arguments.config else {}
    values = deep_merge(values, given_settings(arguments, flags))
    try:
        return settings_from_dict(values)
    except ConfigError as error:
        if arguments.config is None:
            raise
        raise ConfigError(f"{arguments.config}: {error}") from error


def parse_train_settings(argv: list[str]) -> TrainSettings:
    """The settings that ``mlip-eqx train <argv>`` would train with.

    Raises:
        ConfigError: Naming the file (if any), section and field of a bad value.
    """
    parser = argparse.ArgumentParser(prog="mlip-eqx train", allow_abbrev=False)
    flags = add_train_settings_flags(parser)
    return train_settings_from_arguments(parser.parse_args(argv), flags)
