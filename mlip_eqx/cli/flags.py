"""Command-line flags generated from config dataclasses.

A setting's name, type, default and description have one home, its config
dataclass (the description is its entry under "Attributes:" in the class
docstring). A field ``training_loop.num_epochs`` becomes the flag
``--training-loop.num-epochs``; a command may add short aliases (``--epochs``)
that set one or more fields. Fields whose type has no flag form (dicts, unions of
several kinds) are set in a config file.
"""

import argparse
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from mlip_eqx.utils.config import Config, config_field_hints

_ATTRIBUTE = re.compile(r"^(\s*)(\w+):\s*(.*)$")


@dataclasses.dataclass(frozen=True)
class ConfigField:
    """One field of a (nested) config, as a flag would set it.

    Attributes:
        path: Dotted path from the top config, e.g. "training_loop.num_epochs".
        hint: The field's type annotation.
        default: Its default (``dataclasses.MISSING`` if it has none).
        description: Its entry under "Attributes:" in the class docstring.
    """

    path: str
    hint: Any
    default: Any
    description: str


@dataclasses.dataclass(frozen=True)
class SettingFlag:
    """A flag of a command and the fields it sets."""

    name: str
    paths: tuple[str, ...]


def field_descriptions(config_class: type) -> dict[str, str]:
    """Each field's description from the "Attributes:" sections of the class's
    docstrings (base classes first, so a subclass's own entry wins)."""
    descriptions: dict[str, str] = {}
    for cls in reversed(config_class.__mro__):
        doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
        section = doc.partition("\nAttributes:\n")[2]
        indent, name = None, None
        for line in section.splitlines():
            match = _ATTRIBUTE.match(line)
            depth = len(line) - len(line.lstrip())
            if line.strip() and indent is not None and depth < len(indent):
                break  # the end of the section
            if match and indent in (None, match.group(1)):
                indent, name = match.group(1), match.group(2)
                descriptions[name] = match.group(3)
            elif name is not None and line.strip():
                descriptions[name] += " " + line.strip()
    return descriptions


def config_fields(
    config_class: type[Config], defaults: Config | None = None, prefix: str = ""
) -> list[ConfigField]:
    """The fields of ``config_class`` that a flag can set, nested configs
    included (their fields prefixed by the section's name).

    Args:
        config_class: A config dataclass.
        defaults: An instance whose values are the defaults shown (and whose
            nested configs' classes are used); None: the fields' own defaults.
        prefix: Prepended to every path (e.g. "model.").
    """
    hints = config_field_hints(config_class)
    descriptions = field_descriptions(config_class)
    fields = []
    for field in dataclasses.fields(config_class):
        if defaults is not None:
            default = getattr(defaults, field.name)
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = field.default
        path = prefix + field.name
        if isinstance(default, Config):
            fields += config_fields(type(default), default, path + ".")
        elif argument_options(hints[field.name]) is not None:
            description = descriptions.get(field.name, "")
            fields.append(ConfigField(path, hints[field.name], default, description))
    return fields


def argument_options(hint: Any) -> dict[str, Any] | None:
    """The ``add_argument`` options of a field of this type, or None if it has
    no flag form."""
    hint = _without_none(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if hint in (int, float, str):
        return {"type": hint}
    if origin is Literal:
        return {"type": type(args[0]), "choices": args}
    if origin in (tuple, list) and args:
        item = argument_options(args[0])
        if item is not None and "action" not in item:
            return {**item, "nargs": "*"}
    return None


def _without_none(hint: Any) -> Any:
    """The type without ``Annotated`` constraints and an ``| None`` arm."""
    while typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        arms = [arm for arm in typing.get_args(hint) if arm is not type(None)]
        return _without_none(arms[0]) if len(arms) == 1 else hint
    return hint


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    fields: Sequence[ConfigField],
    aliases: Mapping[str, tuple[str, ...]] | None = None,
    required: bool = True,
) -> list[SettingFlag]:
    """Adds a flag per field and per alias (which sets the fields of its
    paths); an alias named as a field's flag replaces it.

    Args:
        parser: The parser or argument group.
        fields: The fields (from :func:`config_fields`).
        aliases: Short flag name -> the field paths it sets.
        required: Whether a field without default needs its flag.

    Returns:
        The flags added, for :func:`given_settings`.
    """
    aliases = dict(aliases or {})
    by_path = {field.path: field for field in fields}
    flags = [SettingFlag(name, paths) for name, paths in aliases.items()]
    # training_loop.num_epochs -> --training-loop.num-epochs
    generated = [SettingFlag(f.path.replace("_", "-"), (f.path,)) for f in fields]
    flags += [flag for flag in generated if flag.name not in aliases]
    for flag in flags:
        field = by_path[flag.paths[0]]
        has_default = field.default is not dataclasses.MISSING
        needed = required and not has_default
        sets = "" if flag.paths == (field.path,) else f"; sets {', '.join(flag.paths)}"
        default = f"; default: {_shown(field.default)}" if has_default else ""
        options = argument_options(field.hint)
        if "action" not in options and "choices" not in options:
            options["metavar"] = field.path.rsplit(".", 1)[-1].upper()
        parser.add_argument(
            f"--{flag.name}",
            dest=f"setting:{flag.name}",
            required=needed,
            help=f"{field.description} ({field.path}{sets}{default})".replace(
                "%", "%%"
            ),
            **options,
        )
    return flags


def _shown(default: Any) -> str:
    if isinstance(default, tuple | list):
        return " ".join(map(str, default)) or "none"
    return str(default)


def given_settings(arguments: argparse.Namespace, flags: Sequence[SettingFlag]) -> dict:
    """The settings the given flags set, nested by section (flags left out are
    absent)."""
    values: dict = {}
    for flag in flags:
        value = getattr(arguments, f"setting:{flag.name}")
        if value is None:
            continue
        for path in flag.paths:
            *sections, name = path.split(".")
            section = values
            for key in sections:
                section = section.setdefault(key, {})
            section[name] = list(value) if isinstance(value, tuple) else value
    return values
