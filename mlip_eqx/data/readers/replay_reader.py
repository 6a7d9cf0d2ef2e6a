"""ReplayReader: new training data mixed with part of the pretraining data."""

import logging
import math

import equinox as eqx
import numpy as np

from mlip_eqx.data.readers.dataset_index_reader import in_dataset
from mlip_eqx.data.readers.reader import ChemicalSystemSplits, ChemicalSystemsReader

logger = logging.getLogger("mlip_eqx")


class ReplayReader(ChemicalSystemsReader):
    """The splits of a reader of new data, with a random part of another
    reader's training structures (the replay set, e.g. the pretraining data)
    added to the training split, so that fine-tuning keeps what the model knew.

    The replay structures are drawn once (seeded), weighted by
    ``replay_weight`` in the loss (times their own weight) and put in data set
    ``replay_dataset_idx`` (with a multi-head model: the pretrained head, while
    the new data has its own, see :class:`DatasetIndexReader`); validation and test
    splits are the new reader's alone, so their metrics measure the new task.
    To measure what the model keeps, evaluate on the replay data's own
    validation split.
    """

    def __init__(
        self,
        reader: ChemicalSystemsReader,
        replay_reader: ChemicalSystemsReader,
        replay_fraction: float,
        replay_weight: float = 1.0,
        seed: int = 42,
        replay_dataset_idx: int = 0,
    ):
        """Constructor.

        Args:
            reader: The new data (all its splits are used).
            replay_reader: The replay data (its training split is used).
            replay_fraction: How many replay structures, as a fraction of the new
                training structures (e.g. 0.5: one for every two new ones; at
                most all of the replay set), > 0.
            replay_weight: The replay structures' weight in the loss, >= 0.
            seed: Seed of the draw.
            replay_dataset_idx: The data set of the replay structures, >= 0.
        """
        if not replay_fraction > 0:
            raise ValueError(
                f"ReplayReader: replay_fraction must be > 0, got {replay_fraction}."
            )
        if not replay_weight >= 0:
            raise ValueError(
                f"ReplayReader: replay_weight must be >= 0, got {replay_weight}."
            )
        self.reader = reader
        self.replay_reader = replay_reader
        self.replay_fraction = float(replay_fraction)
        self.replay_weight = float(replay_weight)
        self.seed = seed
        if replay_dataset_idx < 0:
            raise ValueError(
                "ReplayReader: replay_dataset_idx must be >= 0, got "
                f"{replay_dataset_idx}."
            )
        self.replay_dataset_idx = replay_dataset_idx

    def load(self) -> ChemicalSystemSplits:
        """The new data's splits, the drawn replay structures appended to the
        training split."""
        train, validation, test = self.reader.load()
        replay = self.replay_reader.load()[0]
        if not replay:
            raise ValueError("ReplayReader: the replay reader has no training data.")
        count = min(len(replay), max(1, math.ceil(self.replay_fraction * len(train))))
        chosen = np.random.default_rng(self.seed).choice(
            len(replay), count, replace=False
        )
        replayed = in_dataset(
            [
                eqx.tree_at(
                    lambda system: system.weight,
                    replay[index],
                    replay[index].weight * self.replay_weight,
                )
                for index in sorted(chosen.tolist())
            ],
            self.replay_dataset_idx,
        )
        logger.info(
            "Replay: %d of %d pretraining structures added to the %d new training "
            "structures (loss weight %g).",
            count,
            len(replay),
            len(train),
            self.replay_weight,
        )
        return train + replayed, validation, test
