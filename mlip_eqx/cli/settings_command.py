"""A command whose flags are the fields of one settings config and whose job is
one library function of it."""

import argparse
from collections.abc import Callable
from typing import Any

from mlip_eqx.cli.errors import reported_as_message
from mlip_eqx.cli.flags import add_flags, config_fields, given_settings
from mlip_eqx.utils.config import Config, config_from_dict


def add_settings_command(
    commands: argparse._SubParsersAction,
    name: str,
    settings_class: type[Config],
    job: Callable[[Any], object],
    also: tuple[type[Exception], ...] = (),
    **parser_options: str,
) -> Callable[[argparse.Namespace], int]:
    """Adds the parser of command ``name``, one flag per field of
    ``settings_class``; returns the function that runs ``job(settings)``.

    Args:
        commands: The subparsers of ``mlip-eqx``.
        name: The command's name.
        settings_class: Its settings.
        job: The library function that runs it.
        also: Exceptions reported as a message besides the user errors.
        parser_options: ``help`` and ``description`` of the command.
    """
    parser = commands.add_parser(name, **parser_options)
    flags = add_flags(parser, config_fields(settings_class))

    def run(arguments: argparse.Namespace) -> int:
        with reported_as_message(name, also=also):
            job(config_from_dict(settings_class, given_settings(arguments, flags)))
        return 0

    return run
