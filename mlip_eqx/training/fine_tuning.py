"""Fine-tuning settings: where the pretrained model comes from, what trains, and
which pretraining data is replayed."""

import dataclasses
import logging
from collections.abc import Callable

import optax

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.params_transfer import with_dataset_info, with_new_readout_head
from mlip_eqx.training.freezing import (
    count_layers,
    freeze_parameters,
    last_layers,
    readout_heads,
)
from mlip_eqx.utils.config import Config, ConfigError, NonNegativeFloat, PositiveFloat
from mlip_eqx.utils.trees import flatten_with_key_paths

logger = logging.getLogger("mlip_eqx")


@dataclasses.dataclass(frozen=True)
class FineTuningConfig(Config):
    """How a training run starts from a pretrained model.

    Attributes:
        init_from: A model zip (``model.zip``) or the output directory of a
            training run (its latest checkpoint, EMA parameters); None: train
            from scratch. The model's architecture, element table, cutoff and
            statistics (its DatasetInfo) are kept; data with an element it lacks
            is an error naming the element.
        refit_atomic_energies: Fit new reference energies (E0) to the new
            training data (for labels from another reference, e.g. another DFT
            setup); the other statistics stay the model's. With ``new_head``,
            only the new data set's E0 are fitted.
        frozen: Parameters whose path contains one of these texts do not train
            (e.g. ``".interaction."`` for MACE's interaction blocks,
            ``".network.embedding"``); paths as in
            :func:`mlip_eqx.utils.trees.flatten_with_key_paths`.
        train_last_layers: Train only the last this many message-passing layers
            and the readouts (None: no such limit).
        replay_paths: Pretraining data files (extxyz or HDF5) to replay: part of
            their training structures joins every epoch's training data.
        replay_fraction: Replay structures per new training structure.
        replay_weight: Loss weight of the replay structures.
        new_head: Give the new data a readout head of its own, named so (the
            name inference and the calculator select it by), and a data set
            whose reference energies start as head 0's (with
            ``refit_atomic_energies``: fitted to the new data, for labels from
            another reference); the pretrained heads keep their data sets
            (replayed structures use head 0). The head starts as a copy of head
            0. None: the new data trains the pretrained head(s).
        train_new_head_only: With ``new_head``: only the new head trains.
    """

    init_from: str | None = None
    refit_atomic_energies: bool = False
    frozen: tuple[str, ...] = ()
    train_last_layers: int | None = None
    replay_paths: tuple[str, ...] = ()
    replay_fraction: PositiveFloat = 0.5
    replay_weight: NonNegativeFloat = 1.0
    new_head: str | None = None
    train_new_head_only: bool = False

    def __check_init__(self) -> None:
        starts_fresh = self.init_from is None
        if starts_fresh and (
            self.refit_atomic_energies
            or self.frozen
            or self.train_last_layers is not None
            or self.replay_paths
            or self.new_head is not None
        ):
            raise ConfigError(
                "FineTuningConfig: refit_atomic_energies, frozen, train_last_layers, "
                "replay_paths and new_head need init_from (a pretrained model)."
            )
        if self.train_new_head_only and self.new_head is None:
            raise ConfigError(
                "FineTuningConfig.train_new_head_only needs new_head (the head "
                "to train)."
            )
        if self.train_new_head_only and self.train_last_layers is not None:
            raise ConfigError(
                "FineTuningConfig: train_new_head_only and train_last_layers "
                "exclude each other."
            )
        if self.new_head is not None and not self.new_head.strip():
            raise ConfigError("FineTuningConfig.new_head: the name is empty.")
        if self.train_last_layers is not None and self.train_last_layers < 0:
            raise ConfigError(
                "FineTuningConfig.train_last_layers: must be >= 0, got "
                f"{self.train_last_layers}."
            )

    @property
    def freezes(self) -> bool:
        """Whether some parameters do not train."""
        return (
            bool(self.frozen)
            or self.train_last_layers is not None
            or self.train_new_head_only
        )


def trainable_predicate(
    config: FineTuningConfig, params, new_head_index: int | None = None
) -> Callable[[str], bool]:
    """The parameter paths that train under ``config`` (see
    :func:`mlip_eqx.training.freezing.freeze_parameters`); ``new_head_index``
    is the index of ``config.new_head`` among the model's heads.

    Raises:
        ConfigError: A ``frozen`` text that matches no parameter path, or
            ``train_last_layers`` above the model's number of layers.
    """
    _check_selection(config, params)
    if config.train_new_head_only:
        if new_head_index is None:
            raise ValueError("train_new_head_only needs the new head's index.")
        only_new_head = readout_heads(new_head_index)
        return lambda path: (
            only_new_head(path) and not any(text in path for text in config.frozen)
        )
    in_last_layers = (
        last_layers(params, config.train_last_layers)
        if config.train_last_layers is not None
        else lambda path: True
    )

    def trainable(path: str) -> bool:
        return in_last_layers(path) and not any(text in path for text in config.frozen)

    return trainable


def _check_selection(config: FineTuningConfig, params) -> None:
    """Refuses freezing settings that would silently select nothing or too
    much."""
    paths = [path for path, _ in flatten_with_key_paths(params)]
    for text in config.frozen:
        if not any(text in path for path in paths):
            raise ConfigError(
                f"FineTuningConfig.frozen: {text!r} matches no parameter of the "
                f"model (its paths look like {paths[0]!r}, {paths[-1]!r})."
            )
    if config.train_last_layers is not None:
        num_layers = count_layers(params)
        if config.train_last_layers > num_layers:
            raise ConfigError(
                f"FineTuningConfig.train_last_layers: {config.train_last_layers}, "
                f"but the model has {num_layers} layers."
            )


def fine_tuning_start(
    pretrained: ForceField,
    dataset_info: DatasetInfo,
    config: FineTuningConfig,
    optimizer: optax.GradientTransformation,
    predict_stress: bool = False,
) -> tuple[ForceField, optax.GradientTransformation]:
    """The force field a fine-tuning run starts from and its optimizer.

    Args:
        pretrained: The pretrained force field.
        dataset_info: The run's DatasetInfo: the pretrained one, with refitted
            reference energies, or with one more data set for ``config.new_head``
            (as built by the run's dataset builder).
        config: What trains.
        optimizer: The optimizer of all parameters.
        predict_stress: Whether the fine-tuned model predicts the stress.

    Returns:
        ``(force_field, optimizer)``: the pretrained network with the run's
        DatasetInfo (and a new readout head, a copy of head 0, if the DatasetInfo
        has one more data set), and the optimizer with the frozen parameters
        masked out.
    """
    force_field = ForceField(pretrained.network, predict_stress)
    new_head_index = None
    if dataset_info.num_datasets > pretrained.dataset_info.num_datasets:
        force_field = with_new_readout_head(force_field, dataset_info)
        new_head_index = dataset_info.num_datasets - 1
        logger.info(
            "Fine-tuning: new readout head %d (%r) for the new data, started as a "
            "copy of head 0.",
            new_head_index,
            config.new_head,
        )
    elif dataset_info != pretrained.dataset_info:
        force_field = with_dataset_info(force_field, dataset_info)
    if not config.freezes:
        return force_field, optimizer
    trainable = trainable_predicate(config, force_field.params, new_head_index)
    paths = [path for path, _ in flatten_with_key_paths(force_field.params)]
    logger.info(
        "Fine-tuning: %d of %d parameter arrays train.",
        sum(map(trainable, paths)),
        len(paths),
    )
    return force_field, freeze_parameters(optimizer, trainable, force_field.params)
