"""``mlip-eqx convert --from mace-torch|mlip MODEL --output model.zip``: flags ->
:class:`ConvertSettings` -> :func:`mlip_eqx.workflows.convert.convert`."""

import argparse
from collections.abc import Callable

from mlip_eqx.cli.errors import reported_as_message
from mlip_eqx.cli.flags import add_flags, config_fields, given_settings
from mlip_eqx.utils.config import config_from_dict
from mlip_eqx.workflows.convert import ConvertSettings, convert


def add_parser(
    commands: argparse._SubParsersAction,
) -> Callable[[argparse.Namespace], int]:
    """Adds the command's parser; returns the function that runs it."""
    parser = commands.add_parser(
        "convert",
        help="convert another library's model into a model zip",
        description="Converts a mace-torch MACE model file (e.g. MACE-MP-0; needs "
        'the convert extra: pip install "mlip_eqx[convert]") or a model zip of '
        "the original mlip library (0.2.x; --from mlip) into an mlip_eqx model "
        "zip that predicts the same and runs without them.",
    )
    parser.add_argument("model", metavar="MODEL", help=_model_help())
    fields = [f for f in config_fields(ConvertSettings) if f.path != "model"]
    flags = add_flags(parser, fields, aliases={"from": ("source",)})

    def run(arguments: argparse.Namespace) -> int:
        with reported_as_message("convert", also=(ImportError,)):
            values = given_settings(arguments, flags) | {"model": arguments.model}
            convert(config_from_dict(ConvertSettings, values))
        return 0

    return run


def _model_help() -> str:
    fields = config_fields(ConvertSettings)
    return next(f.description for f in fields if f.path == "model")
