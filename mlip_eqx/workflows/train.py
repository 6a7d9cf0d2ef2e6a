"""What ``mlip-eqx train`` runs: the training job of :class:`TrainSettings`,
from the data files to ``model.zip``.

The steps of :func:`train` are public, for scripts that change one of them:
:func:`~mlip_eqx.workflows.datasets.build_datasets`,
:func:`~mlip_eqx.workflows.pretrained.build_force_field`, :func:`build_loss`,
:func:`build_io_handler`, :func:`write_outputs`.
"""

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import jax
import optax

from mlip_eqx.checkpoint.format import IncompatibleCheckpointError
from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.data.split_selection import UnseenElementsError
from mlip_eqx.inference.batched_inference import predict_dataset
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.loss import HuberLoss, Loss, MSELoss
from mlip_eqx.models.mlip_network import use_float_dtype
from mlip_eqx.models.model_io import save_model_to_zip
from mlip_eqx.plotting import plot_learning_curves, plot_parity
from mlip_eqx.training.device_batches import batches_per_device
from mlip_eqx.training.distributed import is_primary_process
from mlip_eqx.training.fine_tuning import fine_tuning_start
from mlip_eqx.training.mesh import training_mesh
from mlip_eqx.training.metric_units import summarize_metrics
from mlip_eqx.training.optimizer import get_default_mlip_optimizer
from mlip_eqx.training.trackers import make_tracker_logger
from mlip_eqx.training.training_io_handler import TrainingIOHandler
from mlip_eqx.training.training_loggers import JsonLinesLogger, log_metrics_to_table
from mlip_eqx.training.training_loop import TrainingLoop
from mlip_eqx.utils.files import atomic_write, remove_stale_temporaries
from mlip_eqx.workflows.datasets import build_datasets
from mlip_eqx.workflows.pretrained import (
    build_force_field,
    load_pretrained,
    pretrained_settings,
)
from mlip_eqx.workflows.train_settings import TrainSettings, settings_to_dict

logger = logging.getLogger("mlip_eqx")


def build_loss(settings: TrainSettings) -> Loss:
    """The loss of ``settings.loss`` (constant weights)."""
    loss_class = {"mse": MSELoss, "huber": HuberLoss}[settings.loss.kind]
    return loss_class(
        optax.constant_schedule(settings.loss.energy_weight),
        optax.constant_schedule(settings.loss.forces_weight),
        optax.constant_schedule(settings.loss.stress_weight),
        extended_metrics=settings.loss.extended_metrics,
    )


def build_io_handler(
    settings: TrainSettings,
) -> tuple[TrainingIOHandler, JsonLinesLogger | None]:
    """Checkpoints in the output directory (opened: locked, an earlier run's
    checkpoints refused unless resuming or overwriting), a metrics table on the
    console and ``metrics.jsonl``.

    Returns:
        ``(io_handler, metrics_log)``; ``metrics_log`` is None in the processes
        other than 0 of a multi-process run.
    """
    output_dir = Path(settings.output_dir)
    io_handler = TrainingIOHandler(
        TrainingIOHandler.Config(
            local_model_output_dir=output_dir,
            restore_checkpoint_if_exists=settings.resume,
            restore_optimizer_state=settings.resume,
            clear_previous_checkpoints=settings.overwrite,
        )
    )
    # Locks the directory (in every process, in step) and refuses an earlier
    # run's checkpoints unless asked, before metrics.jsonl is touched.
    io_handler.open()
    if not is_primary_process():
        return io_handler, None  # process 0 writes the records
    metrics_log = JsonLinesLogger(output_dir / "metrics.jsonl")
    io_handler.attach_logger(log_metrics_to_table)
    io_handler.attach_logger(metrics_log)
    return io_handler, metrics_log


def write_outputs(
    settings: TrainSettings,
    best_model: ForceField,
    final_set: GraphDataset,
    metrics_log: JsonLinesLogger,
) -> list[str]:
    """``model.zip`` and, if ``settings.plots``, learning curves and parity plots
    of ``final_set``; returns the names written."""
    output_dir = Path(settings.output_dir)
    save_model_to_zip(output_dir / "model.zip", best_model)
    if not settings.plots:
        return ["model.zip"]
    plot_learning_curves(metrics_log.records(), output_dir / "learning_curves.png")
    plot_parity(
        predict_dataset(best_model, final_set),
        output_dir / "parity_energy.png",
        output_dir / "parity_forces.png",
    )
    return [
        "model.zip",
        "learning_curves.png",
        "parity_energy.png",
        "parity_forces.png",
    ]


def model_and_optimizer(
    settings: TrainSettings,
    dataset_info: DatasetInfo,
    pretrained: ForceField | None = None,
) -> tuple[ForceField, optax.GradientTransformation]:
    """The force field to train (fresh, or the pretrained one with the run's
    DatasetInfo and stress setting) and its optimizer (freezing what
    ``settings.fine_tuning`` says)."""
    optimizer = get_default_mlip_optimizer(settings.optimizer)
    if pretrained is None:
        return build_force_field(settings, dataset_info), optimizer
    return fine_tuning_start(
        pretrained,
        dataset_info,
        settings.fine_tuning,
        optimizer,
        predict_stress=settings.predict_stress,
    )


@contextlib.contextmanager
def _trackers(settings: TrainSettings, io_handler: TrainingIOHandler) -> Iterator[None]:
    """Attaches the experiment trackers of ``settings.loggers`` (process 0 of a
    multi-process run only) and closes them when the block ends (a run that
    raises is marked failed in the tracker)."""
    with contextlib.ExitStack() as stack:
        if is_primary_process():
            for kind in settings.loggers:
                tracker = make_tracker_logger(
                    kind,
                    Path(settings.output_dir),
                    run_name=Path(settings.output_dir).name,
                    config=settings_to_dict(settings),
                )
                # Closed when the block ends; marked failed if it raises.
                io_handler.attach_logger(stack.enter_context(tracker))
        yield


def check_resumed_dtype(settings: TrainSettings) -> None:
    """Refuses to resume a run in another dtype than its ``config.json`` says
    (an older one without a dtype trained in float32).

    Raises:
        IncompatibleCheckpointError: Naming both dtypes.
    """
    config_file = Path(settings.output_dir) / "config.json"
    if not (settings.resume and config_file.is_file()):
        return
    earlier = json.loads(config_file.read_text()).get("dtype", "float32")
    if earlier != settings.dtype:
        raise IncompatibleCheckpointError(
            f"The run in {settings.output_dir} trained in {earlier}; resume it with "
            f"--dtype {earlier} (dtype: {earlier!r} in a config file), not "
            f"{settings.dtype}."
        )


def train(settings: TrainSettings) -> dict[str, float]:
    """Runs the training job; returns the test metrics (or validation if no test).

    The data is read before anything is written, so bad data changes nothing.
    After :func:`~mlip_eqx.training.distributed.initialize_distributed`, every
    process of the run calls it with the same settings: they train together on
    the devices of all, and process 0 writes the outputs.

    The job computes in ``settings.dtype``: float64 turns ``jax_enable_x64`` on
    for the whole process first (see
    :func:`~mlip_eqx.models.mlip_network.use_float_dtype`); float32 is refused
    when it is on. The labels stay float64 on the host either way.
    """
    check_resumed_dtype(settings)
    use_float_dtype(settings.dtype)
    output_dir = Path(settings.output_dir)
    parallel = settings.all_devices or jax.process_count() > 1
    # Refused before any data is read (the loop checks it again).
    batches_per_device(training_mesh(parallel), settings.training_loop.batches_per_step)
    pretrained = None
    if settings.fine_tuning.init_from is not None:
        pretrained = load_pretrained(settings.fine_tuning.init_from, settings.dtype)
        settings = pretrained_settings(settings, pretrained)
    try:
        train_set, validation_set, test_set, dataset_info = build_datasets(
            settings, None if pretrained is None else pretrained.dataset_info
        )
    except UnseenElementsError as error:
        if pretrained is None:
            raise
        raise UnseenElementsError(
            f"{error} The model is {settings.fine_tuning.init_from}; fine-tune "
            "on data of its elements only."
        ) from error
    io_handler, metrics_log = build_io_handler(settings)
    primary = is_primary_process()
    force_field, optimizer = model_and_optimizer(settings, dataset_info, pretrained)
    loop = TrainingLoop(
        train_set,
        validation_set,
        force_field,
        build_loss(settings),
        optimizer,
        settings.training_loop,
        io_handler=io_handler,
        should_parallelize=parallel,
    )
    from_scratch = loop.epoch_number == 0  # restores a checkpoint if resuming
    if primary:
        remove_stale_temporaries(output_dir)
        with atomic_write(output_dir / "config.json", "w") as file:
            json.dump(settings_to_dict(settings), file, indent=2)
        if from_scratch:  # records of an earlier, killed or overwritten attempt
            metrics_log.clear()
    with _trackers(settings, io_handler):
        loop.run()
        final_set = test_set if test_set.graphs else validation_set
        results = loop.test(final_set)
    if not primary:
        return results
    best_model = loop.best_model  # this process's copy: the plots predict here
    written = write_outputs(
        settings,
        best_model.with_params(jax.device_get(best_model.params)),
        final_set,
        metrics_log,
    )
    logger.info(
        "Done. %s set: %s. Written to %s: checkpoints (model/), dataset_info.json, "
        "metrics.jsonl (eV units), config.json, %s.",
        "test" if test_set.graphs else "validation",
        summarize_metrics(results),
        output_dir,
        ", ".join(written),
    )
    return results
