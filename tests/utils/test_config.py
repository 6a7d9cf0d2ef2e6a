"""Config checks: error messages describe every annotated field type."""

import dataclasses
from typing import Annotated, Literal

import pytest
from beartype.vale import Is

from mlip_eqx.training.training_loop_config import TrainingLoopConfig
from mlip_eqx.utils.config import (
    Config,
    ConfigError,
    Fraction,
    PositiveInt,
    config_from_dict,
    constrained,
)

Probability = constrained(float, lambda value: 0 <= value <= 1, "a number in [0, 1]")


@dataclasses.dataclass(frozen=True)
class ExampleConfig(Config):
    probability: Probability = 0.5
    count: PositiveInt | None = None
    fraction: Fraction = 0.1
    undescribed: Annotated[int, Is[lambda value: value % 2 == 0]] = 2
    mode: Literal["fast", "slow"] = "fast"
    seed: int = 0
    files: tuple[str, ...] = ()
    flag: bool = False


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("probability", 1.5, "a number in [0, 1]"),
        ("count", 0, "an integer > 0 or None"),
        ("fraction", 1.0, "a number in [0, 1)"),
        ("undescribed", 3, "an integer within the field's allowed range"),
        ("mode", "medium", "one of 'fast', 'slow'"),
        ("seed", "one", "an integer"),
        ("files", "tr.xyz", "a list of strings"),
        ("flag", "false", "true or false"),
    ],
)
def test_errors_describe_the_expected_values(field, value, expected):
    message = f"ExampleConfig.{field}: invalid value {value!r} (expected {expected})."
    with pytest.raises(ConfigError) as error:
        ExampleConfig(**{field: value})
    assert str(error.value) == message


def test_constrained_types_are_checked_and_round_trip():
    assert ExampleConfig(probability=1).probability == 1.0
    assert config_from_dict(ExampleConfig, {"probability": 0.25}).probability == 0.25


def test_ema_decay_error_is_readable():
    with pytest.raises(
        ConfigError,
        match=r"TrainingLoopConfig\.ema_decay: invalid value 1\.0 \(expected a "
        r"number in \(0, 1\)\)\.",
    ):
        TrainingLoopConfig(num_epochs=1, ema_decay=1.0)
