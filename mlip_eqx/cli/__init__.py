"""The ``mlip-eqx`` command: one module per subcommand, each a thin layer that
turns flags (generated from the library's config dataclasses) into settings and
calls one library function of :mod:`mlip_eqx.workflows`:

- ``mlip-eqx train``: :func:`mlip_eqx.workflows.train.train` (demo data by default);
- ``mlip-eqx preprocess``: :func:`mlip_eqx.workflows.preprocess.run_preprocess`;
- ``mlip-eqx evaluate``: :func:`mlip_eqx.workflows.evaluate.evaluate`;
- ``mlip-eqx simulate``: :func:`mlip_eqx.workflows.simulate.simulate`;
- ``mlip-eqx convert``: :func:`mlip_eqx.workflows.convert.convert`.

Only this package turns exceptions into messages and exit codes.
"""

import argparse
import logging
import sys

from rich.logging import RichHandler

from mlip_eqx.cli import convert, evaluate, preprocess, simulate, train

COMMANDS = (train, preprocess, evaluate, simulate, convert)


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    """The parser of ``mlip-eqx`` and the function that runs each command."""
    parser = argparse.ArgumentParser(
        prog="mlip-eqx", description=__doc__, allow_abbrev=False
    )
    commands = parser.add_subparsers(dest="command", required=True)
    runners = {
        module.__name__.rsplit(".", 1)[1]: module.add_parser(commands)
        for module in COMMANDS
    }
    return parser, runners


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlip-eqx`` console script; returns the exit status
    (a user error raises ``SystemExit`` with its message)."""
    parser, runners = build_parser()
    arguments = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(show_path=False)] if sys.stderr.isatty() else None,
    )
    logging.getLogger("mlip_eqx").setLevel(logging.INFO)
    return runners[arguments.command](arguments)
