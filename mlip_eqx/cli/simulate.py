"""``mlip-eqx simulate``: flags -> :class:`SimulateSettings` ->
:func:`mlip_eqx.workflows.simulate.simulate`."""

import argparse
from collections.abc import Callable

from mlip_eqx.cli.settings_command import add_settings_command
from mlip_eqx.workflows.simulate import SimulateSettings, simulate


def add_parser(
    commands: argparse._SubParsersAction,
) -> Callable[[argparse.Namespace], int]:
    """Adds the command's parser; returns the function that runs it."""
    return add_settings_command(
        commands,
        "simulate",
        SimulateSettings,
        simulate,
        # ImportError: the JAX-MD engine without the [md] extra; ValueError: an
        # unreadable structure file or an element the model lacks.
        also=(ImportError, ValueError),
        help="run molecular dynamics or a minimisation with a trained model",
        description="MD (NVT Langevin or NVE) or an energy minimisation of the "
        "first frame of a structure file, with the JAX-MD or the ASE engine; "
        "writes the trajectory as extxyz and a PNG of energy and temperature.",
    )
