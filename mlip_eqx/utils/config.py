"""Frozen, type-checked configuration dataclasses."""

import dataclasses
import typing
from typing import Annotated

from beartype.door import is_bearable
from beartype.vale import Is

PositiveInt = Annotated[int, Is[lambda value: value > 0]]
NonNegativeInt = Annotated[int, Is[lambda value: value >= 0]]
PositiveFloat = Annotated[float, Is[lambda value: value > 0]]
NonNegativeFloat = Annotated[float, Is[lambda value: value >= 0]]
Fraction = Annotated[float, Is[lambda value: 0 <= value < 1]]


class ConfigError(ValueError):
    """A configuration field has a value of the wrong type or out of range."""


class Config:
    """Base of all configs: subclasses are ``@dataclasses.dataclass(frozen=True)``.

    Every field is checked against its annotation (with beartype) at construction;
    a bad value raises :class:`ConfigError` naming the class and the field.
    Integers are accepted where a float is expected.
    """

    # The jaxtyping import hook would type-check __init__ before __post_init__ runs
    # and raise its own error type; configs check themselves, with ConfigError.
    __no_type_check__ = True

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            hint = field.type
            if isinstance(value, int) and not isinstance(value, bool):
                if not is_bearable(value, hint) and is_bearable(float(value), hint):
                    object.__setattr__(self, field.name, float(value))
                    continue
            if not is_bearable(value, hint):
                raise ConfigError(
                    f"{type(self).__name__}.{field.name}: invalid value {value!r} "
                    f"(expected {_describe(hint)})."
                )

    def replace(self, **changes):
        """Returns a copy with some fields changed (and checked again)."""
        return dataclasses.replace(self, **changes)


def _describe(hint) -> str:
    described = {
        PositiveInt: "an integer > 0",
        NonNegativeInt: "an integer >= 0",
        PositiveFloat: "a number > 0",
        NonNegativeFloat: "a number >= 0",
        Fraction: "a number in [0, 1)",
    }
    if hint in described:
        return described[hint]
    args = typing.get_args(hint)
    if args and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_describe(a) for a in inner) + " or None"
    return getattr(hint, "__name__", str(hint))
