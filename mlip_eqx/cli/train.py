"""``mlip-eqx train``: flags and a config file -> :class:`TrainSettings` ->
:func:`mlip_eqx.workflows.train.train`, in one process or as one process of a
multi-process run."""

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from mlip_eqx.cli.errors import USER_ERRORS, error_message, reported_as_message
from mlip_eqx.cli.flags import add_flags, config_fields, given_settings
from mlip_eqx.cli.train_flags import (
    add_train_settings_flags,
    train_settings_from_arguments,
)
from mlip_eqx.training import distributed
from mlip_eqx.training.distributed import DistributedConfig
from mlip_eqx.workflows.train import train
from mlip_eqx.workflows.train_settings import TrainSettings

logger = logging.getLogger("mlip_eqx")

HINT = (
    "(Settings of the data pipeline, such as max_n_node, are fields of the "
    "graph_dataset section: --graph-dataset.max-n-node or a --config file; see "
    "config.json of a run and mlip-eqx train --help.)"
)


def add_parser(
    commands: argparse._SubParsersAction,
) -> Callable[[argparse.Namespace], int]:
    """Adds the command's parser; returns the function that runs it."""
    parser = commands.add_parser(
        "train",
        usage="%(prog)s [flags]",
        help="train a force field",
        description="Train a force field on the built-in demo data or on "
        "extxyz/HDF5 files.",
    )
    flags = add_train_settings_flags(parser)
    group = parser.add_argument_group(
        "multi-process training (jax.distributed)",
        "Start one process per host (or per GPU) with the same settings; the "
        f"first three, or {distributed.COORDINATOR_VARIABLE}, "
        f"{distributed.NUM_PROCESSES_VARIABLE} and {distributed.PROCESS_ID_VARIABLE}, "
        "are needed.",
    )
    distributed_flags = add_flags(
        group, config_fields(DistributedConfig), required=False
    )

    def run(arguments: argparse.Namespace) -> int:
        with reported_as_message("train", hint=HINT):
            settings = train_settings_from_arguments(arguments, flags)
            run_config = join_distributed_run(
                given_settings(arguments, distributed_flags)
            )
        if run_config is None:
            with reported_as_message("train", hint=HINT):
                train(settings)
            return 0
        try:
            train(settings)
        except USER_ERRORS as error:
            if not distributed.lost_another_process(error):
                end_process(error_message("train", error, HINT))
            end_process(stopped_message(run_config, settings, error))
        except Exception as error:
            traceback.print_exception(error)
            end_process(stopped_message(run_config, settings, error))
        return 0

    return run


def stopped_message(
    run_config: DistributedConfig, settings: TrainSettings, error: Exception
) -> str:
    """Why a process of a multi-process run stops, and how to go on."""
    return (
        f"mlip-eqx train: process {run_config.process_id} of "
        f"{run_config.num_processes} stopped: {type(error).__name__}: "
        f"{str(error)[:500]}\nIf another process of the run failed or was "
        "stopped, this one cannot go on alone. Start all processes again "
        "with --resume to continue from the last checkpoint in "
        f"{Path(settings.output_dir) / 'model'}."
    )


def join_distributed_run(given: dict) -> DistributedConfig | None:
    """Joins the multi-process run the flags (``given``) or the environment
    describe; returns its config, or None for a single-process run.

    Raises:
        DistributedSetupError: Some of the settings are missing or wrong.
    """
    config = DistributedConfig.from_environment(
        given.pop("coordinator", None),
        given.pop("num_processes", None),
        given.pop("process_id", None),
    )
    if config is None:
        return None
    config = config.replace(**given)
    distributed.initialize_distributed(config)
    if not distributed.is_primary_process():
        logger.setLevel(logging.WARNING)  # process 0 reports the progress
    return config


def end_process(message: str) -> None:
    """Prints why a process of a multi-process run stops, and ends it at once
    (exit status 1): at a normal exit JAX would wait for the other processes
    (its shutdown barrier), for minutes if one of them has died."""
    print(message, file=sys.stderr, flush=True)
    logging.shutdown()
    sys.stdout.flush()
    os._exit(1)
