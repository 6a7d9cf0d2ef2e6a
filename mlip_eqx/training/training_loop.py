"""TrainingLoop: the guide's facade over :func:`~mlip_eqx.training.fit.fit`."""

import logging

import jax
import optax
from jax.sharding import Mesh
from jaxtyping import PyTree

from mlip_eqx.checkpoint.format import IncompatibleCheckpointError
from mlip_eqx.data.batch_shapes import BatchShape
from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.loss import Loss, WeightedEFSLoss
from mlip_eqx.training.device_batches import batches_per_device
from mlip_eqx.training.epoch import evaluate, train_epoch
from mlip_eqx.training.fit import TrainingProgress, fit
from mlip_eqx.training.mesh import training_mesh
from mlip_eqx.training.protocol import in_stage_two
from mlip_eqx.training.resume import resume
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

logger = logging.getLogger("mlip_eqx")

__all__ = [
    "IncompatibleCheckpointError",
    "TrainingLoop",
    "evaluate",
    "train_epoch",
]


class TrainingLoop:
    """Trains a force field: the guide's facade over :func:`~mlip_eqx.training.fit.fit`.

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

    Creating the loop touches no file. The run starts (once) at :meth:`run`,
    or earlier at the first use of :attr:`epoch_number`, :attr:`training_state`,
    :attr:`best_model` or :meth:`test`: the IO handler's directory is opened
    (locked; an earlier run's checkpoints refused, resumed or cleared as
    configured), a checkpoint restored if configured (:func:`resume`) and
    ``dataset_info.json`` written.

    A custom step (built from :func:`loss_and_gradients`, :func:`apply_gradients`
    and :func:`shard_step` over :func:`training_mesh`) is passed as ``train_step``;
    batching, prefetching, evaluation, best model, checkpoints and resuming stay
    the same.

    The config's protocol (learning-rate reduction on a validation plateau,
    early stopping, a second stage) is that of :func:`fit`; the second stage
    trains the loss with the config's stage-two energy and forces weights
    (:meth:`WeightedEFSLoss.with_weights`) at the constant stage-two learning
    rate, through a second pair of built-in steps (compiled once, when the
    stage starts).

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
        """Sets the loop up (the steps, the mesh, the initial state); no file IO.

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
            train_step: A custom ``(state, batches, epoch) -> (state, metrics)``,
                jitted over ``training_mesh(should_parallelize)`` (default:
                :func:`make_train_step` of the force field, loss and optimizer).
            eval_step: A custom ``(params, batches, epoch) -> metrics`` over the
                same mesh, with a ``"loss"`` metric (default: :func:`make_eval_step`).
            extras: The initial ``TrainingState.extras`` (user state for custom
                steps; the loop and the checkpoints carry it unchanged).

        Raises:
            ValueError: If the loss cannot be trained as set up (e.g. a negative
                weight, or a stress weight for a force field without stress); see
                ``Loss.check_settings``; or if ``config.stage_two_epoch`` is set
                with custom steps or a loss that is not a ``WeightedEFSLoss``.
        """
        self.config = config
        loss.check_settings(force_field.predict_stress, config.num_epochs)
        stage_two_loss = None
        if config.stage_two_epoch is not None:
            stage_two_loss = _stage_two_loss(
                loss,
                config,
                custom_steps=train_step is not None or eval_step is not None,
            )
            stage_two_loss.check_settings(force_field.predict_stress, config.num_epochs)
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
        self._force_field = force_field
        if io_handler is None:
            io_handler = TrainingIOHandler()
            io_handler.attach_logger(log_metrics_to_line)
        self.io_handler = io_handler
        self._train_step = train_step or make_train_step(
            force_field, loss, optimizer, self._mesh
        )
        self._eval_step = eval_step or make_eval_step(force_field, loss, self._mesh)
        self._stage_two_steps = None
        if stage_two_loss is not None:
            self._stage_two_steps = (
                make_train_step(
                    force_field,
                    stage_two_loss,
                    optimizer,
                    self._mesh,
                    learning_rate=config.stage_two_learning_rate,
                ),
                make_eval_step(force_field, stage_two_loss, self._mesh),
            )
        # Batch shapes each step has run on (it compiles once for each).
        self._train_shapes: set[BatchShape] = set()
        self._eval_shapes: set[BatchShape] = set()
        self._initial_state = init_training_state(
            force_field,
            optimizer,
            seed=config.random_seed,
            mesh=self._mesh,
            ema_decay=config.ema_decay,
            extras=extras,
        )
        self._progress: TrainingProgress | None = None

    def _started(self) -> TrainingProgress:
        """The progress of the run, starting it (once) if it has not started:
        opens the output directory, restores a checkpoint if configured and
        writes ``dataset_info.json``.

        Raises:
            DirectoryLockedError, ExistingCheckpointsError,
            IncompatibleCheckpointError, CheckpointRestorationError: See
                :func:`resume`.
        """
        if self._progress is None:
            dataset_info = self._force_field.dataset_info
            self._progress = resume(
                self._initial_state,
                self.io_handler.checkpointer,
                dataset_info,
                self.config.use_ema_params_for_eval,
            )
            self.io_handler.save_dataset_info(dataset_info)
        return self._progress

    @property
    def training_state(self) -> TrainingState:
        """The current (after ``run()``: final) training state; starts the run."""
        return self._started().state

    @property
    def best_model(self) -> ForceField:
        """The force field with the parameters of the best validation loss; starts
        the run."""
        return self._force_field.with_params(self._started().best_params)

    @property
    def epoch_number(self) -> int:
        """The last completed epoch: 0 before training from scratch, the restored
        epoch before a resumed run; starts the run (restoring the checkpoint)."""
        return self._started().epoch

    @property
    def mesh(self) -> Mesh:
        """The device mesh of the steps."""
        return self._mesh

    def run(self) -> None:
        """Starts the run if needed, then trains until ``config.num_epochs``
        epochs are done (see :func:`fit`)."""
        self._progress = fit(
            self._train_step,
            self._eval_step,
            self._started(),
            self._train_dataset,
            self._validation_dataset,
            self._mesh,
            self.config,
            checkpointer=self.io_handler.checkpointer,
            log=self.io_handler.log,
            train_shapes=self._train_shapes,
            eval_shapes=self._eval_shapes,
            stage_two_steps=self._stage_two_steps,
        )

    def test(self, test_dataset: GraphDataset) -> dict[str, float]:
        """Evaluates the best parameters on ``test_dataset`` and logs TEST_METRICS
        (the loss is that of the stage the run ended in).

        Returns:
            The metrics over the whole test set.
        """
        progress = self._started()
        logger.info("Test set: %s", test_dataset.describe_batching())
        eval_step, shapes = self._eval_step, self._eval_shapes
        if self._stage_two_steps is not None and in_stage_two(progress.state):
            eval_step, shapes = self._stage_two_steps[1], None
        metrics = evaluate(
            eval_step,
            progress.best_params,
            test_dataset,
            self._mesh,
            progress.epoch,
            shapes,
        )
        self.io_handler.log(LogCategory.TEST_METRICS, metrics, progress.epoch)
        return metrics


def _stage_two_loss(
    loss: Loss, config: TrainingLoopConfig, custom_steps: bool
) -> WeightedEFSLoss:
    """The second stage's loss: ``loss`` with the config's stage-two weights.

    Raises:
        ValueError: With custom steps (whose second stage is unknown), or a loss
            without energy and forces weights.
    """
    if custom_steps:
        raise ValueError(
            "TrainingLoop: TrainingLoopConfig.stage_two_epoch needs the built-in "
            "train and eval steps; with custom steps, call fit() with "
            "stage_two_steps."
        )
    if not isinstance(loss, WeightedEFSLoss):
        raise ValueError(
            f"TrainingLoop: TrainingLoopConfig.stage_two_epoch needs a "
            f"WeightedEFSLoss (MSELoss, HuberLoss) to set the stage-two weights "
            f"of; got {type(loss).__name__}."
        )
    return loss.with_weights(
        config.stage_two_energy_weight, config.stage_two_forces_weight
    )
