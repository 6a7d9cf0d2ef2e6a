"""``mlip-eqx preprocess``: the train command's data and graph settings ->
:func:`mlip_eqx.workflows.preprocess.run_preprocess`."""

import argparse
from collections.abc import Callable

from mlip_eqx.cli.errors import reported_as_message
from mlip_eqx.cli.flags import SettingFlag
from mlip_eqx.cli.train_flags import (
    add_train_settings_flags,
    train_settings_from_arguments,
)
from mlip_eqx.data.preprocess import DEFAULT_SHARD_SIZE
from mlip_eqx.utils.config import ConfigError
from mlip_eqx.workflows.preprocess import run_preprocess


def add_parser(
    commands: argparse._SubParsersAction,
) -> Callable[[argparse.Namespace], int]:
    """Adds the command's parser; returns the function that runs it."""
    parser = commands.add_parser(
        "preprocess",
        usage="%(prog)s [flags]",
        help="build the graphs of a data set once and store them as HDF5 shards",
        description="Reads the data (the train command's data and graph "
        "settings: --train/--valid/--test, --cutoff, --config, ...), builds the "
        "graphs and the DatasetInfo, and writes them to --output-dir as sharded "
        "HDF5, for mlip-eqx train --preprocessed DIR.",
    )
    flags = add_train_settings_flags(parser)
    parser.add_argument(
        "--shard-size",
        type=int,
        default=DEFAULT_SHARD_SIZE,
        help=f"structures per shard file (default: {DEFAULT_SHARD_SIZE})",
    )

    def run(arguments: argparse.Namespace) -> int:
        # ValueError: a shard size < 1 or an output directory already used.
        with reported_as_message("preprocess", also=(ValueError,)):
            _refuse_training_flags(arguments, flags)
            settings = train_settings_from_arguments(arguments, flags)
            run_preprocess(settings, arguments.shard_size)
        return 0

    return run


# The settings preprocess uses: the data, the graphs, and where to write.
_PREPROCESS_SECTIONS = ("data.", "graph_dataset.", "output_dir", "overwrite")


def _refuse_training_flags(
    arguments: argparse.Namespace, flags: list[SettingFlag]
) -> None:
    """Raises ConfigError naming the given flags that only training uses."""
    ignored = [
        f"--{flag.name}"
        for flag in flags
        if getattr(arguments, f"setting:{flag.name}") is not None
        and not any(path.startswith(_PREPROCESS_SECTIONS) for path in flag.paths)
    ]
    if ignored:
        raise ConfigError(
            f"{', '.join(ignored)}: training settings, which preprocess does not "
            "use (it takes the data and graph settings); give them to mlip-eqx "
            "train."
        )
