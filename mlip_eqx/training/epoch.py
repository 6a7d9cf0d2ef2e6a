"""One pass over a data set: a training epoch, or the evaluation of parameters."""

import logging
import time

from jax.sharding import Mesh
from jaxtyping import PyTree

from mlip_eqx.data.batch_shapes import BatchShape, covering_shape
from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.models.loss.reductions import reduce_metrics
from mlip_eqx.training.device_batches import device_batches, num_device_steps
from mlip_eqx.training.training_state import TrainingState
from mlip_eqx.training.training_step import EvalStep, TrainStep
from mlip_eqx.utils.progress import track

logger = logging.getLogger("mlip_eqx")

__all__ = ["evaluate", "train_epoch"]


def train_epoch(
    train_step: TrainStep,
    state: TrainingState,
    dataset: GraphDataset,
    mesh: Mesh,
    epoch: int,
    description: str = "Training",
    compiled_shapes: set[BatchShape] | None = None,
    batches_per_step: int | None = None,
) -> tuple[TrainingState, dict[str, float]]:
    """Runs ``train_step`` over every batch of ``epoch``.

    Args:
        train_step: ``(state, batches, epoch) -> (state, metrics)``, jitted over
            ``mesh`` (e.g. :func:`make_train_step`); its metrics are in reducible
            form (:mod:`mlip_eqx.models.loss.reductions`).
        state: The training state (donated to the first step).
        dataset: The training batches.
        mesh: The mesh of the step.
        epoch: The epoch number (selects the order of the batches).
        description: Label of the progress bar.
        compiled_shapes: If given, the batch shapes ``train_step`` has already
            run on: the first batch of any other shape is logged (the step
            compiles for it) and its shape added.
        batches_per_step: Batches per step over all devices (None: one per
            device); see :func:`device_batches`.

    Returns:
        The new state and the epoch's metrics (each reduced over every step as it
        declares), with ``runtime_in_seconds``, ``nodes_per_second`` and
        ``graphs_per_second``.
    """
    start = time.perf_counter()
    step_metrics, nodes, graphs = [], 0, 0
    batches = device_batches(dataset, mesh, epoch, batches_per_step)
    total = num_device_steps(dataset, mesh, epoch, batches_per_step)
    for batch in track(batches, description, total=total):
        _note_new_shape(compiled_shapes, batch.shape, "train", dataset)
        state, metrics = train_step(state, batch.graphs, epoch)
        step_metrics.append(metrics)
        nodes += batch.num_real_nodes
        graphs += batch.num_real_graphs
    summary = reduce_metrics(step_metrics)
    seconds = time.perf_counter() - start
    summary["runtime_in_seconds"] = seconds
    summary["nodes_per_second"] = nodes / seconds
    summary["graphs_per_second"] = graphs / seconds
    return state, summary


def evaluate(
    eval_step: EvalStep,
    params: PyTree,
    dataset: GraphDataset,
    mesh: Mesh,
    epoch: int,
    compiled_shapes: set[BatchShape] | None = None,
) -> dict[str, float]:
    """The metrics of ``params`` on every structure of ``dataset``.

    Args:
        eval_step: ``(params, batches, epoch) -> metrics``, jitted over ``mesh``
            (e.g. :func:`make_eval_step`).
        params: The parameters to evaluate.
        dataset: The batches (in the order of epoch 0).
        mesh: The mesh of the step.
        epoch: The epoch number passed to the step (for the loss weights).
        compiled_shapes: As for :func:`train_epoch`, for ``eval_step``. A shape
            of ``dataset`` that is not among them is padded to a compiled one
            with at most 1.5 times its nodes and edges, if there is one
            (:func:`covering_shape`), instead of compiling the step anew.

    Returns:
        Each metric reduced over the whole data set as it declares (e.g. the RMSE
        of every force component of the set).

    Raises:
        ValueError: If the data set has no structures.
    """
    if not dataset.graphs:
        raise ValueError("Cannot evaluate on a dataset without structures.")
    step_metrics = []
    padded_shapes = _compiled_covers(dataset, compiled_shapes)
    for batch in device_batches(dataset, mesh, 0, padded_shapes=padded_shapes):
        _note_new_shape(compiled_shapes, batch.shape, "evaluation", dataset)
        step_metrics.append(eval_step(params, batch.graphs, epoch))
    return reduce_metrics(step_metrics)


def _compiled_covers(
    dataset: GraphDataset, compiled_shapes: set[BatchShape] | None
) -> dict[BatchShape, BatchShape]:
    """The compiled shape each new shape of ``dataset`` is padded to, where one
    covers it (logged)."""
    covers = {}
    for shape in dataset.batch_shapes:
        if compiled_shapes and shape not in compiled_shapes:
            cover = covering_shape(shape, compiled_shapes)
            if cover is not None:
                covers[shape] = cover
                logger.info(
                    "Batches of %s are padded to the compiled shape of %s.",
                    shape,
                    cover,
                )
    return covers


def _note_new_shape(
    compiled_shapes: set[BatchShape] | None,
    shape: BatchShape,
    step: str,
    dataset: GraphDataset,
) -> None:
    """Logs the first batch of a shape that the step has not run on yet."""
    if compiled_shapes is None or shape in compiled_shapes:
        return
    compiled_shapes.add(shape)
    logger.info(
        "Compiling the %s step for batches of %s (shape %d of %d of this data "
        "set; %d compiled for this step so far).",
        step,
        shape,
        dataset.batch_shapes.index(shape) + 1,
        len(dataset.batch_shapes),
        len(compiled_shapes),
    )
