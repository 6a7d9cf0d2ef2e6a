"""Frozen, type-checked configuration dataclasses."""

import dataclasses
import inspect
import math
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any

from beartype.door import is_bearable
from beartype.vale import Is

# What each type made by `constrained` accepts, in words, for error messages.
_DESCRIPTIONS: dict[object, str] = {}


def constrained(base: type, predicate: Callable[[Any], bool], description: str):
    """A config field type: values of ``base`` for which ``predicate`` is true.

    Returns ``Annotated[base, Is[predicate]]`` (checked by beartype, like any
    such annotation); a value that does not fit raises a :class:`ConfigError`
    saying ``description``, e.g. "a number in (0, 1)".

    Args:
        base: The value's type, e.g. ``float``.
        predicate: True for the allowed values.
        description: The allowed values in words, for error messages.
    """
    hint = Annotated[base, Is[predicate]]
    _DESCRIPTIONS[hint] = description
    return hint


PositiveInt = constrained(int, lambda value: value > 0, "an integer > 0")
NonNegativeInt = constrained(int, lambda value: value >= 0, "an integer >= 0")
PositiveFloat = constrained(
    float, lambda value: 0 < value < math.inf, "a finite number > 0"
)
NonNegativeFloat = constrained(
    float, lambda value: 0 <= value < math.inf, "a finite number >= 0"
)
Fraction = constrained(float, lambda value: 0 <= value < 1, "a number in [0, 1)")


class ConfigError(ValueError):
    """A configuration field has a value of the wrong type or out of range."""


class UnknownFieldsError(ConfigError):
    """A config file or dict names fields that the config class does not have
    (often a setting put in the wrong section)."""


class Config:
    """Base of all configs: subclasses are ``@dataclasses.dataclass(frozen=True)``.

    At construction (its ``__post_init__``, which subclasses do not override):
    1. a field declared with ``dataclasses.field(metadata={"convert": f})`` is
       replaced by ``f(value)`` (e.g. lists of pairs to a dict of floats);
    2. every field is checked against its annotation (with beartype); a bad
       value raises :class:`ConfigError` naming the class and the field
       (integers are accepted where a float is expected);
    3. every class of the hierarchy that defines a ``__check_init__(self)``
       has it called, base classes first (as equinox does for modules): the
       checks that involve several fields, each raising :class:`ConfigError`.
    """

    # The jaxtyping import hook would type-check __init__ before __post_init__ runs
    # and raise its own error type; configs check themselves, with ConfigError.
    __no_type_check__ = True

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            convert = field.metadata.get("convert")
            if convert is not None:
                value = convert(getattr(self, field.name))
                object.__setattr__(self, field.name, value)
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
        for cls in reversed(type(self).__mro__):
            check = cls.__dict__.get("__check_init__")
            if check is not None:
                check(self)

    def replace(self, **changes):
        """Returns a copy with some fields changed (and checked again)."""
        return dataclasses.replace(self, **changes)


def config_hash(config: Config) -> int:
    """Hash of a frozen config whose fields may hold dicts (hashed as their sorted
    items); use it as the ``__hash__`` of such a config."""
    return hash(
        tuple(
            tuple(sorted(value.items())) if isinstance(value, dict) else value
            for value in dataclasses.astuple(config)
        )
    )


def _describe(hint) -> str:
    """The values that ``hint`` accepts, in words."""
    if hint in _DESCRIPTIONS:
        return _DESCRIPTIONS[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return f"{_describe(args[0])} within the field's allowed range"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        arms = [arg for arg in args if arg is not type(None)]
        described = " or ".join(_describe(arm) for arm in arms)
        return described + " or None" if len(arms) < len(args) else described
    if origin in (tuple, list) and args:
        return f"a list of {_plural(args[0])}"
    if hint is float:
        return "a number"
    if hint is int:
        return "an integer"
    if hint is bool:
        return "true or false"
    return getattr(hint, "__name__", str(hint))


def _plural(hint) -> str:
    """The items of a list, in words ("strings", "numbers", ...)."""
    names = {str: "strings", int: "integers", float: "numbers", bool: "booleans"}
    return names.get(hint, f"values of {_describe(hint)}")


def config_to_dict(config: Config) -> dict:
    """The fields of a config as a JSON-serialisable dict.

    Tuples become lists, dict keys become strings and nested configs nested dicts;
    :func:`config_from_dict` restores them from the field annotations.

    Raises:
        TypeError: If a field holds a value that JSON cannot represent.
    """
    return {
        field.name: _to_json_value(getattr(config, field.name), field.name)
        for field in dataclasses.fields(config)
    }


def config_from_dict(config_class: type[Config], data: dict) -> Config:
    """Inverse of :func:`config_to_dict`: the config of ``config_class``.

    Missing fields take their defaults; the values are checked as at construction.

    Raises:
        UnknownFieldsError: If ``data`` has keys that are not fields of the class.
        ConfigError: If a value is invalid.
    """
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UnknownFieldsError(f"{config_class.__name__}: unknown fields {unknown}.")
    hints = config_field_hints(config_class)
    values = {
        name: _from_json_value(value, hints[name]) for name, value in data.items()
    }
    return config_class(**values)


def config_field_hints(config_class: type[Config]) -> dict[str, object]:
    """The resolved type annotation of every field of ``config_class``."""
    # typing.get_type_hints honours Config.__no_type_check__ and would return {}.
    hints = {}
    for cls in reversed(config_class.__mro__):
        hints.update(inspect.get_annotations(cls, eval_str=True))
    return hints


def _to_json_value(value, where: str):
    if isinstance(value, Config):
        return config_to_dict(value)
    if isinstance(value, list | tuple):
        return [_to_json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _to_json_value(v, f"{where}[{k!r}]") for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"{where}: {type(value).__name__} values cannot be stored as JSON.")


def _from_json_value(value, hint):
    """Rebuilds tuples, non-string dict keys and nested configs from a JSON value
    according to the type hint (values that fit no arm are left for the check)."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _from_json_value(value, typing.get_args(hint)[0])
    if origin in (typing.Union, types.UnionType):
        arms = typing.get_args(hint)
        for arm in arms:
            if _json_kind_fits(value, arm):
                return _from_json_value(value, arm)
        return value
    if isinstance(hint, type) and issubclass(hint, Config) and isinstance(value, dict):
        return config_from_dict(hint, value)
    args = typing.get_args(hint)
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json_value(item, args[0]) for item in value)
        if len(args) == len(value):
            return tuple(_from_json_value(v, arg) for v, arg in zip(value, args))
        return tuple(value)
    if origin is list and isinstance(value, list) and args:
        return [_from_json_value(item, args[0]) for item in value]
    if origin is dict and isinstance(value, dict) and args:
        key_type, value_type = args
        return {
            _dict_key(key, key_type): _from_json_value(item, value_type)
            for key, item in value.items()
        }
    return value


def _json_kind_fits(value, hint) -> bool:
    """Whether a JSON value (dict, list or scalar) could encode the hint's type."""
    while typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    origin = typing.get_origin(hint) or hint
    if isinstance(value, dict):
        return origin is dict or (
            isinstance(origin, type) and issubclass(origin, Config)
        )
    if isinstance(value, list):
        return origin in (tuple, list)
    return origin not in (dict, tuple, list)


def _dict_key(key: str, key_type):
    if key_type in (int, float):
        try:
            return key_type(key)
        except ValueError:
            return key
    return key
