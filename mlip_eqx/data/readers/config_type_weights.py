"""Loss weights per kind of structure (its ``config_type``), as mace-torch's
``config_type_weights``."""

import json
import logging
from collections import Counter
from collections.abc import Mapping
from typing import final

import equinox as eqx
import numpy as np

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.data.readers.reader import ChemicalSystemSplits, ChemicalSystemsReader

logger = logging.getLogger("mlip_eqx")


class ConfigTypeWeightsError(ValueError):
    """A map of config_type weights is malformed."""


def parse_config_type_weights(text: str) -> dict[str, float]:
    """The weights of a JSON object ``{"MD": 1, "NEB": 10}``.

    Raises:
        ConfigTypeWeightsError: The text is no JSON object of config_type names
            to numbers >= 0.
    """
    try:
        weights = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigTypeWeightsError(
            f"config_type weights: not valid JSON ({error}): {text!r}."
        ) from error
    if not isinstance(weights, dict):
        raise ConfigTypeWeightsError(
            f'config_type weights: expected a JSON object such as {{"MD": 1, '
            f'"NEB": 10}}, got {text!r}.'
        )
    return checked_config_type_weights(weights)


def checked_config_type_weights(weights: Mapping[object, object]) -> dict[str, float]:
    """The weights as {str: float}.

    Raises:
        ConfigTypeWeightsError: A weight is not a finite number >= 0 (naming
            its config_type).
    """
    checked = {}
    for name, weight in weights.items():
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not (np.isfinite(weight) and weight >= 0)
        ):
            raise ConfigTypeWeightsError(
                f"config_type weights: the weight of {name!r} must be a number >= "
                f"0, got {weight!r}."
            )
        checked[str(name)] = float(weight)
    return checked


@final
class ConfigTypeWeightsReader(ChemicalSystemsReader):
    """The splits of another reader, each structure's weight multiplied by the
    weight of its ``config_type`` (1 for structures without one or with a type
    not in the map, as mace-torch's "Default").

    Loading logs the number of structures per config_type, and warns about
    weights that match no structure.
    """

    def __init__(self, reader: ChemicalSystemsReader, weights: Mapping[str, float]):
        """Constructor.

        Args:
            reader: The structures.
            weights: {config_type: weight >= 0}.
        """
        self.reader = reader
        self.weights = checked_config_type_weights(weights)

    def load(self) -> ChemicalSystemSplits:
        """The reader's splits with the weights applied."""
        splits = self.reader.load()
        counts = Counter(system.config_type for systems in splits for system in systems)
        logger.info(
            "Structures per config_type (all splits; weight): %s",
            ", ".join(
                f"{name or '(none)'}: {count} ({self.weights.get(name, 1.0):g})"
                for name, count in sorted(
                    counts.items(), key=lambda kv: (kv[0] is None, str(kv[0]))
                )
            ),
        )
        unmatched = sorted(set(self.weights) - set(counts))
        if unmatched:
            logger.warning(
                "config_type weights of %s match no structure (the structures' "
                "config_types are %s).",
                ", ".join(map(repr, unmatched)),
                ", ".join(repr(name) for name in counts if name is not None) or "none",
            )
        train, validation, test = (
            [self._weighted(system) for system in systems] for systems in splits
        )
        return train, validation, test

    def _weighted(self, system: ChemicalSystem) -> ChemicalSystem:
        if system.config_type not in self.weights:
            return system
        weight = self.weights[system.config_type]
        return eqx.tree_at(lambda s: s.weight, system, system.weight * weight)
