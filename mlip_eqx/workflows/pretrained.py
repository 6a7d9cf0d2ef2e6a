"""Pretrained models for fine-tuning: a model zip, or a training run's output
directory (its latest checkpoint)."""

import dataclasses
import json
import logging
import os
from pathlib import Path

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.mlip_network import FloatDtypeName
from mlip_eqx.models.model_io import load_model_from_zip
from mlip_eqx.models.params_loading import (
    load_parameters_from_checkpoint,
    saved_epochs,
)
from mlip_eqx.models.registry import get_network_class
from mlip_eqx.workflows.train_settings import (
    TrainSettings,
    default_train_settings,
    settings_from_dict,
)

logger = logging.getLogger("mlip_eqx")


class PretrainedModelError(ValueError):
    """A path is neither a model zip nor a training run with a checkpoint."""


def build_force_field(settings: TrainSettings, dataset_info: DatasetInfo) -> ForceField:
    """The network of ``settings.model_type`` with fresh parameters (seeded by
    ``settings.seed``)."""
    network = get_network_class(settings.model_type)(settings.model, dataset_info)
    return ForceField.from_mlip_network(
        network, predict_stress=settings.predict_stress, seed=settings.seed
    )


def load_pretrained(
    path: str | os.PathLike, dtype: FloatDtypeName | None = None
) -> ForceField:
    """The force field of a model zip, or of a training run's output directory
    (the EMA parameters of its latest checkpoint, the architecture from its
    ``config.json`` and ``dataset_info.json``).

    Args:
        path: The zip or the directory.
        dtype: The dtype of a zip's force field (see
            :func:`~mlip_eqx.models.model_io.load_model_from_zip`); a run's
            checkpoint is loaded into a network of this session's dtype.

    Raises:
        PretrainedModelError: Naming the path if it is neither, if the zip is
            damaged, or if the run has no checkpoint yet.
    """
    path = Path(path)
    if path.is_file():
        try:
            return load_model_from_zip(None, path, dtype)
        except ValueError as error:  # damaged, or not a model zip
            raise PretrainedModelError(str(error)) from error
    run_files = [path / "config.json", path / "dataset_info.json"]
    if not (path.is_dir() and all(file.is_file() for file in run_files)):
        raise PretrainedModelError(
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
        raise PretrainedModelError(f"{path}: the run has no checkpoint yet.")
    params = load_parameters_from_checkpoint(
        path, force_field.params, epochs[-1], load_ema_params=True
    )
    logger.info("Pretrained model: %s, epoch %d (EMA parameters).", path, epochs[-1])
    return force_field.with_params(params)


def pretrained_settings(
    settings: TrainSettings, pretrained: ForceField
) -> TrainSettings:
    """The settings with the pretrained model's architecture and cutoff (a
    fine-tuning run trains that model, whatever the model section said; the
    model and cutoff settings this ignores are logged as a warning) and its
    stress prediction; an element the model lacks is an error, not a dropped
    structure.

    Raises:
        PretrainedModelError: If ``fine_tuning.new_head`` names a head the model
            already has (naming the model and its heads).
    """
    new_head = settings.fine_tuning.new_head
    heads = pretrained.dataset_info.dataset_names
    if new_head is not None and new_head in heads:
        raise PretrainedModelError(
            f"{settings.fine_tuning.init_from}: the model already has a head called "
            f"{new_head!r} (its heads: {list(heads)}); give fine_tuning.new_head "
            "another name, or leave it out to train the model's heads."
        )
    ignored = _ignored_architecture(settings, pretrained)
    if ignored:
        logger.warning(
            "%s: fine-tuning keeps the pretrained model's architecture and "
            "cutoff; these settings cannot change them and are ignored: %s.",
            settings.fine_tuning.init_from,
            ", ".join(ignored),
        )
    if pretrained.predict_stress and not settings.predict_stress:
        logger.info(
            "%s predicts stress; so does the fine-tuned model.",
            settings.fine_tuning.init_from,
        )
    return dataclasses.replace(
        settings,
        predict_stress=settings.predict_stress or pretrained.predict_stress,
        model_type=type(pretrained.network).__name__,
        model=pretrained.config,
        graph_dataset=dataclasses.replace(
            settings.graph_dataset,
            graph_cutoff_angstrom=pretrained.cutoff_distance,
            strict_elements=True,
        ),
    )


def _ignored_architecture(settings: TrainSettings, pretrained: ForceField) -> list[str]:
    """The model and cutoff settings that differ from the job's defaults (so
    were asked for) and from the pretrained model's (so are not kept)."""
    defaults = default_train_settings()
    ignored = []
    network = type(pretrained.network).__name__
    if settings.model_type not in (defaults.model_type, network):
        ignored.append(f"model_type={settings.model_type}")
    default_model = (
        defaults.model
        if type(settings.model) is type(defaults.model)
        else type(settings.model)()
    )
    for field in dataclasses.fields(settings.model):
        value = getattr(settings.model, field.name)
        kept = getattr(pretrained.config, field.name, None)
        if value != getattr(default_model, field.name) and value != kept:
            ignored.append(f"model.{field.name}={value!r}")
    cutoff = settings.graph_dataset.graph_cutoff_angstrom
    if cutoff not in (
        defaults.graph_dataset.graph_cutoff_angstrom,
        pretrained.cutoff_distance,
    ):
        ignored.append(f"graph_dataset.graph_cutoff_angstrom={cutoff}")
    return ignored
