"""ReplayReader: new training data mixed with part of the pretraining data."""

import logging
import math

import equinox as eqx
import numpy as np

from mlip_eqx.data.readers.reader import ChemicalSystemSplits, ChemicalSystemsReader

logger = logging.getLogger("mlip_eqx")


class ReplayReader(ChemicalSystemsReader):
    """The splits of a reader of new data, with a random part of another
    reader's training structures (the replay set, e.g. the pretraining data)
    added to the training split, so that fine-tuning keeps what the model knew.

    The replay structures are drawn once (seeded) and weighted by
    ``replay_weight`` in the loss (times their own weight); validation and test
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
        replayed = [
            eqx.tree_at(
                lambda system: system.weight,
                replay[index],
                replay[index].weight * self.replay_weight,
            )
            for index in sorted(chosen.tolist())
        ]
        logger.info(
            "Replay: %d of %d pretraining structures added to the %d new training "
            "structures (loss weight %g).",
            count,
            len(replay),
            len(train),
            self.replay_weight,
        )
        return train + replayed, validation, test
