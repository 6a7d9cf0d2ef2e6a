"""``mlip-eqx evaluate``: flags -> :class:`EvaluateSettings` ->
:func:`mlip_eqx.workflows.evaluate.evaluate`."""

import argparse
from collections.abc import Callable

from mlip_eqx.cli.settings_command import add_settings_command
from mlip_eqx.workflows.evaluate import EvaluateSettings, evaluate


def add_parser(
    commands: argparse._SubParsersAction,
) -> Callable[[argparse.Namespace], int]:
    """Adds the command's parser; returns the function that runs it."""
    return add_settings_command(
        commands,
        "evaluate",
        EvaluateSettings,
        evaluate,
        # A structure with an element the model lacks: a ValueError naming both.
        also=(ValueError,),
        help="evaluate a trained model on structures",
        description="Errors of a model on labelled structures (energy per atom, "
        "forces, stress when labelled), its predictions as extxyz (MLIP_energy, "
        "MLIP_forces, MLIP_stress) and parity plots.",
    )
