"""Fine-tuning settings: where the pretrained model comes from, what trains, and
which pretraining data is replayed."""

import dataclasses
from collections.abc import Callable

from mlip_eqx.training.freezing import last_layers
from mlip_eqx.utils.config import Config, ConfigError, NonNegativeFloat, PositiveFloat


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
            setup); the other statistics stay the model's.
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
    """

    init_from: str | None = None
    refit_atomic_energies: bool = False
    frozen: tuple[str, ...] = ()
    train_last_layers: int | None = None
    replay_paths: tuple[str, ...] = ()
    replay_fraction: PositiveFloat = 0.5
    replay_weight: NonNegativeFloat = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        starts_fresh = self.init_from is None
        if starts_fresh and (
            self.refit_atomic_energies
            or self.frozen
            or self.train_last_layers is not None
            or self.replay_paths
        ):
            raise ConfigError(
                "FineTuningConfig: refit_atomic_energies, frozen, train_last_layers "
                "and replay_paths need init_from (a pretrained model)."
            )
        if self.train_last_layers is not None and self.train_last_layers < 0:
            raise ConfigError(
                "FineTuningConfig.train_last_layers: must be >= 0, got "
                f"{self.train_last_layers}."
            )

    @property
    def freezes(self) -> bool:
        """Whether some parameters do not train."""
        return bool(self.frozen) or self.train_last_layers is not None


def trainable_predicate(config: FineTuningConfig, params) -> Callable[[str], bool]:
    """The parameter paths that train under ``config`` (see
    :func:`mlip_eqx.training.freezing.freeze_parameters`)."""
    in_last_layers = (
        last_layers(params, config.train_last_layers)
        if config.train_last_layers is not None
        else lambda path: True
    )

    def trainable(path: str) -> bool:
        return in_last_layers(path) and not any(text in path for text in config.frozen)

    return trainable
