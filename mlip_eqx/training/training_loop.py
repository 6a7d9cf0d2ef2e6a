"""TrainingLoop: a thin host loop around the pure train and eval steps."""

import logging
import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh
from jaxtyping import PyTree

from mlip_eqx.checkpoint.format import (
    CheckpointRestorationError,
    IncompatibleCheckpointError,
)
from mlip_eqx.data.batch_shapes import BatchShape
from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.loss import Loss
from mlip_eqx.models.loss.reductions import reduce_metrics
from mlip_eqx.training.best_model import update_best_model_record
from mlip_eqx.training.device_batches import (
    batches_per_device,
    device_batches,
    num_device_steps,
)
from mlip_eqx.training.ema import debiased_ema_params
from mlip_eqx.training.mesh import replicate, training_mesh
from mlip_eqx.training.training_io_handler import LogCategory, TrainingIOHandler
from mlip_eqx.training.training_loggers import log_metrics_to_line
from mlip_eqx.training.training_loop_config import TrainingLoopConfig
from mlip_eqx.training.training_state import TrainingState, init_training_state
from mlip_eqx.training.training_step import (
    EvalStep,
    TrainStep,
    make_eval_step,
    make_train_step,
)
from mlip_eqx.utils.progress import track

logger = logging.getLogger("mlip_eqx")

__all__ = [
    "IncompatibleCheckpointError",
    "TrainingLoop",
    "evaluate",
    "train_epoch",
]


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
        compiled_shapes: As for :func:`train_epoch`, for ``eval_step``.

    Returns:
        Each metric reduced over the whole data set as it declares (e.g. the RMSE
        of every force component of the set).

    Raises:
        ValueError: If the data set has no structures.
    """
    if not dataset.graphs:
        raise ValueError("Cannot evaluate on a dataset without structures.")
    step_metrics = []
    for batch in device_batches(dataset, mesh, 0):
        _note_new_shape(compiled_shapes, batch.shape, "evaluation", dataset)
        step_metrics.append(eval_step(params, batch.graphs, epoch))
    return reduce_metrics(step_metrics)


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


class TrainingLoop:
    """Trains a force field: epochs of train steps, evaluation, best-model tracking.

    Each epoch runs the jitted, data-parallel ``train_step`` over all training
    batches (in an order fixed by the dataset's seed and the epoch), then evaluates
    the validation set with the EMA (or raw) parameters. A new best validation loss
    keeps those parameters as the best model; a checkpoint is saved through the IO
    handler for every new best and for the last epoch. With
    ``should_parallelize=True`` every device is used: batches are grouped
    per device by the loop itself. After ``jax.distributed.initialize`` the
    mesh spans every process's devices; each process then runs the same loop,
    builds only its own devices' batches, and only process 0 writes files and
    runs the loggers (see :class:`TrainingIOHandler`). Metrics are exact: they do not
    depend on the number of devices, the packing or the padding.

    A custom step (built from :func:`loss_and_gradients`, :func:`apply_gradients`
    and :func:`shard_step` over :func:`training_mesh`) replaces the built-in one;
    batching, prefetching, evaluation, best model, checkpoints and resuming stay
    the same.

    Example::

        loop = TrainingLoop(train_set, validation_set, force_field, loss, optimizer,
                            TrainingLoop.Config(num_epochs=10))
        loop.run()
        best_force_field = loop.best_model
    """

    Config = TrainingLoopConfig

    def __init__(
        self,
        train_dataset: GraphDataset,
        validation_dataset: GraphDataset,
        force_field: ForceField,
        loss: Loss,
        optimizer: optax.GradientTransformation,
        config: TrainingLoopConfig,
        io_handler: TrainingIOHandler | None = None,
        should_parallelize: bool = False,
        train_step: TrainStep | None = None,
        eval_step: EvalStep | None = None,
        extras: PyTree | None = None,
    ):
        """Constructor; restores a checkpoint if the IO handler is configured to.

        Args:
            train_dataset: Training batches (``GraphDataset``).
            validation_dataset: Validation batches (``GraphDataset``).
            force_field: The model to train (its parameters are the starting point).
            loss: The training loss.
            optimizer: Any optax optimizer (e.g. ``get_default_mlip_optimizer()``);
                gradient accumulation through ``optax.MultiSteps``.
            config: The loop settings.
            io_handler: Checkpointing and logging; default: no checkpoints and
                metrics logged as lines.
            should_parallelize: Use all devices (data parallel) instead of one: the
                local ones, or with ``jax.distributed`` those of every process
                (required there).

        Raises:
            ValueError: If the loss cannot be trained as set up (e.g. a negative
                weight, or a stress weight for a force field without stress); see
                ``Loss.check_settings``.
            train_step: A custom ``(state, batches, epoch) -> (state, metrics)``,
                jitted over ``training_mesh(should_parallelize)`` (default:
                :func:`make_train_step` of the force field, loss and optimizer).
            eval_step: A custom ``(params, batches, epoch) -> metrics`` over the
                same mesh, with a ``"loss"`` metric (default: :func:`make_eval_step`).
            extras: The initial ``TrainingState.extras`` (user state for custom
                steps; the loop and the checkpoints carry it unchanged).
        """
        self.config = config
        loss.check_settings(force_field.predict_stress, config.num_epochs)
        self._mesh = training_mesh(should_parallelize)
        per_device = batches_per_device(self._mesh, config.batches_per_step)
        logger.info(
            "Training on %d device(s) of %d process(es), %d batch(es) per device "
            "and step.",
            self._mesh.devices.size,
            jax.process_count(),
            per_device,
        )
        self._train_dataset = train_dataset
        self._validation_dataset = validation_dataset
        if config.eval_num_graphs is not None:
            count = min(config.eval_num_graphs, len(validation_dataset.graphs))
            self._validation_dataset = validation_dataset.subset(range(count))
        self._force_field = force_field
        if io_handler is None:
            io_handler = TrainingIOHandler()
            io_handler.attach_logger(log_metrics_to_line)
        self.io_handler = io_handler
        self._train_step = train_step or make_train_step(
            force_field, loss, optimizer, self._mesh
        )
        self._eval_step = eval_step or make_eval_step(force_field, loss, self._mesh)
        # Batch shapes each step has run on (it compiles once for each).
        self._train_shapes: set[BatchShape] = set()
        self._eval_shapes: set[BatchShape] = set()
        for name, dataset in (
            ("Training", train_dataset),
            ("Validation", self._validation_dataset),
        ):
            logger.info("%s set: %s", name, dataset.describe_batching())

        state = init_training_state(
            force_field,
            optimizer,
            seed=config.random_seed,
            mesh=self._mesh,
            ema_decay=config.ema_decay,
            extras=extras,
        )
        self._epoch = 0
        self.io_handler.check_resumable(force_field.dataset_info)
        self._best_params = self._evaluation_params(state)
        restored = self.io_handler.restore_training_state(state)
        if restored is not None:
            fresh, (state, self._epoch) = state, restored
            logger.info("Resuming training after epoch %d.", self._epoch)
            self._best_params = self._restored_best_params(fresh, state)
        self._state = state
        self.io_handler.save_dataset_info(force_field.dataset_info)

    @property
    def training_state(self) -> TrainingState:
        """The current (after ``run()``: final) training state."""
        return self._state

    @property
    def best_model(self) -> ForceField:
        """The force field with the parameters of the best validation loss."""
        return self._force_field.with_params(self._best_params)

    @property
    def epoch_number(self) -> int:
        """The last completed epoch (0 before training)."""
        return self._epoch

    @property
    def mesh(self) -> Mesh:
        """The device mesh of the steps."""
        return self._mesh

    def run(self) -> None:
        """Trains until ``config.num_epochs`` epochs are done."""
        if self._epoch > 0:
            self.io_handler.log(
                LogCategory.CLEANUP_AFTER_CKPT_RESTORATION, {}, self._epoch
            )
        elif self.config.run_eval_at_start:
            self._evaluate_and_track_best()
        while self._epoch < self.config.num_epochs:
            self._epoch += 1
            self._state, summary = train_epoch(
                self._train_step,
                self._state,
                self._train_dataset,
                self._mesh,
                self._epoch,
                f"Epoch {self._epoch}/{self.config.num_epochs}",
                self._train_shapes,
                self.config.batches_per_step,
            )
            if summary.get("skipped_updates"):
                logger.warning(
                    "Epoch %d: %d steps had non-finite gradients and were skipped.",
                    self._epoch,
                    int(summary["skipped_updates"]),
                )
            self.io_handler.log(LogCategory.TRAIN_METRICS, summary, self._epoch)
            self._evaluate_and_track_best()
            self.io_handler.upload_completed_saves()
        self.io_handler.wait_until_finished()
        self._warn_if_validation_never_improved()

    def test(self, test_dataset: GraphDataset) -> dict[str, float]:
        """Evaluates the best parameters on ``test_dataset`` and logs TEST_METRICS.

        Returns:
            The metrics over the whole test set.
        """
        logger.info("Test set: %s", test_dataset.describe_batching())
        metrics = evaluate(
            self._eval_step,
            self._best_params,
            test_dataset,
            self._mesh,
            self._epoch,
            self._eval_shapes,
        )
        self.io_handler.log(LogCategory.TEST_METRICS, metrics, self._epoch)
        return metrics

    def _evaluation_params(self, state: TrainingState) -> PyTree:
        """A copy of the parameters of ``state`` to evaluate (the next step donates
        the state's buffers, so they are never kept by reference)."""
        if self.config.use_ema_params_for_eval and int(state.ema_state.step) > 0:
            params = debiased_ema_params(state.ema_state)
        else:
            params = state.params
        return jax.tree.map(jnp.copy, params)

    def _restored_best_params(
        self, fresh: TrainingState, restored: TrainingState
    ) -> PyTree:
        """The best model's parameters after resuming: those of the restored
        epoch, of the untrained model (best epoch 0) or of the best epoch's
        checkpoint (always kept)."""
        best_epoch = int(restored.best_model.epoch)
        if best_epoch == self._epoch:
            return self._evaluation_params(restored)
        if best_epoch == 0:
            return self._evaluation_params(fresh)
        try:
            best = self.io_handler.restore_checkpoint(best_epoch, fresh)
        except CheckpointRestorationError as error:
            logger.warning(
                "The best model (epoch %d) cannot be restored (%s); the parameters "
                "of epoch %d stand in for it.",
                best_epoch,
                error,
                self._epoch,
            )
            return self._evaluation_params(restored)
        return self._evaluation_params(best)

    def _warn_if_validation_never_improved(self) -> None:
        record = self._state.best_model
        if int(record.epoch) > 0:
            return
        if math.isfinite(float(record.loss)):
            reason = "no epoch improved on the untrained model's validation loss"
        else:
            reason = "the validation loss was not finite in any epoch"
        logger.warning(
            "Training did not improve the model: %s. The best model is the "
            "untrained one; check the learning rate and the data (the last "
            "epoch's state is checkpointed for inspection).",
            reason,
        )

    def _evaluate_and_track_best(self) -> None:
        params = self._evaluation_params(self._state)
        metrics = evaluate(
            self._eval_step,
            params,
            self._validation_dataset,
            self._mesh,
            self._epoch,
            self._eval_shapes,
        )
        self.io_handler.log(LogCategory.EVAL_METRICS, metrics, self._epoch)
        record, improved = update_best_model_record(
            self._state.best_model, metrics["loss"], self._epoch
        )
        if improved:
            self._best_params = params
            self._state = eqx.tree_at(
                lambda s: s.best_model, self._state, replicate(record, self._mesh)
            )
        # Checkpoints: every new best model, and the last epoch (to resume from).
        if self._epoch > 0 and (improved or self._epoch == self.config.num_epochs):
            self.io_handler.save_checkpoint(self._state, self._epoch, metrics["loss"])
        self.io_handler.log(
            LogCategory.BEST_MODEL,
            {"best_loss": float(record.loss), "best_epoch": int(record.epoch)},
            self._epoch,
        )
