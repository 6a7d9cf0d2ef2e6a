"""Configuration of the chemical-system readers: where the data is, what to load."""

import dataclasses
import functools
import os
from collections.abc import Sequence

from mlip_eqx.data.readers.labels import check_required_labels
from mlip_eqx.utils.config import Config, ConfigError, PositiveInt

PathLike = str | os.PathLike
DatasetPaths = PathLike | Sequence[PathLike]


def _normalise_paths(paths: object, name: str) -> list[str]:
    """The paths as a list of str (None: empty); naming the field if one is bad."""
    if paths is None:
        return []
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    if not isinstance(paths, Sequence):
        raise ConfigError(
            f"ChemicalSystemsReaderConfig.{name}: invalid value {paths!r} (expected "
            "a path or a list of paths)."
        )
    normalised = []
    for path in paths:
        if not isinstance(path, str | os.PathLike):
            raise ConfigError(
                f"ChemicalSystemsReaderConfig.{name}: invalid path {path!r} (expected "
                "a str or os.PathLike)."
            )
        path = os.fspath(path)
        if not isinstance(path, str) or not path:
            raise ConfigError(
                f"ChemicalSystemsReaderConfig.{name}: invalid path {path!r} (expected "
                "a non-empty text path)."
            )
        normalised.append(path)
    return normalised


@dataclasses.dataclass(frozen=True)
class ChemicalSystemsReaderConfig(Config):
    """Where the train, validation and test data are and how much of it to load.

    Paths are given as the original library takes them: a str or
    ``os.PathLike`` (e.g. ``pathlib.Path``), or a list (any sequence) of them;
    each is stored, as there, as a list (of str here).

    Attributes:
        train_dataset_paths: Path or list of paths to the training data; not empty.
            Stored as a list of strings.
        valid_dataset_paths: Path(s) to the validation data, or None for none.
            Stored as a list of strings (empty for None).
        test_dataset_paths: Path(s) to the test data, or None for none. Stored as a
            list of strings (empty for None).
        train_num_to_load: Number of structures to load from the start of each
            training path (the limit applies per path), or None for all.
        valid_num_to_load: The same for each validation path.
        test_num_to_load: The same for each test path.
        required_labels: Labels every structure must have, a subset of "energy",
            "forces" and "stress"; a structure lacking one raises an error naming the
            file, the structure and the key. Use ``()`` for unlabeled inference data.
    """

    train_dataset_paths: DatasetPaths = dataclasses.field(
        metadata={
            "convert": functools.partial(_normalise_paths, name="train_dataset_paths")
        }
    )
    valid_dataset_paths: DatasetPaths | None = dataclasses.field(
        default=None,
        metadata={
            "convert": functools.partial(_normalise_paths, name="valid_dataset_paths")
        },
    )
    test_dataset_paths: DatasetPaths | None = dataclasses.field(
        default=None,
        metadata={
            "convert": functools.partial(_normalise_paths, name="test_dataset_paths")
        },
    )
    train_num_to_load: PositiveInt | None = None
    valid_num_to_load: PositiveInt | None = None
    test_num_to_load: PositiveInt | None = None
    required_labels: tuple[str, ...] = ("energy", "forces")

    def __check_init__(self) -> None:
        if not self.train_dataset_paths:
            raise ConfigError(
                f"{type(self).__name__}.train_dataset_paths: at least one path is "
                "needed."
            )
        try:
            check_required_labels(
                self.required_labels, f"{type(self).__name__}.required_labels"
            )
        except ValueError as error:
            raise ConfigError(str(error)) from None
