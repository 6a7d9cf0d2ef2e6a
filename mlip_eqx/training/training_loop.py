"""TrainingLoop: a thin host loop around the pure train and eval steps."""

import logging
import math
import os
import time
from collections.abc import Iterator

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import PyTree

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.data.prefetch import prefetch
from mlip_eqx.graph.graph import Graph
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.loss import Loss
from mlip_eqx.training.ema import debiased_ema_params
from mlip_eqx.training.mesh import batch_sharding, make_mesh, replicate
from mlip_eqx.training.training_io_handler import LogCategory, TrainingIOHandler
from mlip_eqx.training.training_loggers import log_metrics_to_line
from mlip_eqx.training.training_loop_config import TrainingLoopConfig
from mlip_eqx.training.training_state import TrainingState, init_training_state
from mlip_eqx.training.training_step import make_eval_step, make_train_step
from mlip_eqx.utils.progress import track

logger = logging.getLogger("mlip_eqx")

# Batches moved to the devices ahead of the step that uses them.
_DEVICE_PREFETCH = 2


class IncompatibleCheckpointError(ValueError):
    """A checkpoint to resume from was made for another model or data set."""


class TrainingLoop:
    """Trains a force field: epochs of train steps, evaluation, best-model tracking.

    Each epoch runs the jitted, data-parallel ``train_step`` over all training
    batches (in an order fixed by the dataset's seed and the epoch), then evaluates
    the validation set with the EMA (or raw) parameters. A new best validation loss
    keeps those parameters as the best model and saves a checkpoint through the IO
    handler. With ``should_parallelize=True`` every local device is used: batches
    are grouped per device by the loop itself.

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
    ):
        """Constructor; restores a checkpoint if the IO handler is configured to.

        Args:
            train_dataset: Training batches (``GraphDataset``).
            validation_dataset: Validation batches (``GraphDataset``).
            force_field: The model to train (its parameters are the starting point).
            loss: The training loss.
            optimizer: Any optax optimizer (e.g. ``get_default_mlip_optimizer()``).
            config: The loop settings.
            io_handler: Checkpointing and logging; default: no checkpoints and
                metrics logged as lines.
            should_parallelize: Use all local devices (data parallel) instead of one.
        """
        self.config = config
        devices = jax.local_devices()
        self._mesh = make_mesh(devices if should_parallelize else devices[:1])
        self._num_devices = len(self._mesh.devices.flat)
        self._train_dataset = train_dataset
        self._validation_dataset = validation_dataset
        if config.eval_num_graphs is not None:
            count = min(config.eval_num_graphs, len(validation_dataset.graphs))
            self._validation_dataset = validation_dataset.subset(range(count))
        self._force_field = force_field
        if io_handler is None:
            io_handler = TrainingIOHandler()
            io_handler.attach_logger(log_metrics_to_line)
        if io_handler.config.ema_decay != config.ema_decay:
            raise ValueError(
                f"The IO handler saves the EMA with ema_decay="
                f"{io_handler.config.ema_decay} but the loop uses "
                f"{config.ema_decay}; set both to the same value."
            )
        self.io_handler = io_handler
        self._train_step = make_train_step(
            force_field,
            loss,
            optimizer,
            self._mesh,
            ema_decay=config.ema_decay,
            num_gradient_accumulation_steps=config.num_gradient_accumulation_steps,
        )
        self._eval_step = make_eval_step(force_field, loss, self._mesh)

        state = init_training_state(
            force_field, optimizer, seed=config.random_seed, mesh=self._mesh
        )
        state = eqx.tree_at(
            lambda s: s.extras,
            state,
            replicate(
                {
                    "best_validation_loss": jnp.asarray(jnp.inf, jnp.float32),
                    "best_epoch": jnp.zeros((), jnp.int32),
                },
                self._mesh,
            ),
        )
        self._epoch = 0
        self._check_checkpoint_dataset_info(force_field.dataset_info)
        restored = self.io_handler.restore_training_state(state)
        if restored is not None:
            state, self._epoch = restored
            logger.info("Resuming training after epoch %d.", self._epoch)
        self._state = state
        self._best_params = self._evaluation_params()
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
            self._train_epoch()
            self._evaluate_and_track_best()
        self.io_handler.wait_until_finished()

    def test(self, test_dataset: GraphDataset) -> dict[str, float]:
        """Evaluates the best parameters on ``test_dataset`` and logs TEST_METRICS.

        Returns:
            The mean metrics over the test batches.
        """
        metrics = self._evaluate(self._best_params, test_dataset)
        self.io_handler.log(LogCategory.TEST_METRICS, metrics, self._epoch)
        return metrics

    def _evaluation_params(self) -> PyTree:
        if self.config.use_ema_params_for_eval and int(self._state.ema_state.step) > 0:
            return debiased_ema_params(self._state.ema_state, self.config.ema_decay)
        return self._state.params

    def _device_batches(
        self, dataset: GraphDataset, epoch: int
    ) -> Iterator[tuple[Graph, int, int]]:
        """Batches stacked per device and placed on the mesh, with their numbers of
        real nodes and graphs, produced on a background thread."""
        sharding = batch_sharding(self._mesh)

        def produce():
            for batch in dataset.iter_batches(epoch, num_devices=self._num_devices):
                yield (
                    jax.device_put(batch, sharding),
                    int(np.sum(batch.node_mask)),
                    int(np.sum(batch.graph_mask)),
                )

        return prefetch(produce(), _DEVICE_PREFETCH)

    def _train_epoch(self) -> None:
        epoch = self._epoch
        start = time.perf_counter()
        num_steps = math.ceil(
            self._train_dataset.num_batches(epoch) / self._num_devices
        )
        step_metrics, nodes, graphs = [], 0, 0
        batches = self._device_batches(self._train_dataset, epoch)
        for batch, batch_nodes, batch_graphs in track(
            batches, f"Epoch {epoch}/{self.config.num_epochs}", total=num_steps
        ):
            self._state, metrics = self._train_step(self._state, batch, epoch)
            step_metrics.append(metrics)
            nodes += batch_nodes
            graphs += batch_graphs
        host_metrics = jax.device_get(step_metrics)
        seconds = time.perf_counter() - start
        summary = {
            key: float(np.mean([m[key] for m in host_metrics]))
            for key in host_metrics[0]
        }
        summary["skipped_updates"] = float(
            sum(m["skipped_updates"] for m in host_metrics)
        )
        if "learning_rate" in summary:
            summary["learning_rate"] = float(host_metrics[-1]["learning_rate"])
        summary["runtime_in_seconds"] = seconds
        summary["nodes_per_second"] = nodes / seconds
        summary["graphs_per_second"] = graphs / seconds
        if summary["skipped_updates"]:
            logger.warning(
                "Epoch %d: %d steps had non-finite gradients and were skipped.",
                epoch,
                int(summary["skipped_updates"]),
            )
        self.io_handler.log(LogCategory.TRAIN_METRICS, summary, epoch)

    def _evaluate(self, params: PyTree, dataset: GraphDataset) -> dict[str, float]:
        if not dataset.graphs:
            raise ValueError("Cannot evaluate on a dataset without structures.")
        batch_metrics = [
            self._eval_step(params, batch, self._epoch)
            for batch, _, _ in self._device_batches(dataset, 0)
        ]
        host_metrics = jax.device_get(batch_metrics)
        return {
            key: float(np.mean([m[key] for m in host_metrics]))
            for key in host_metrics[0]
        }

    def _evaluate_and_track_best(self) -> None:
        params = self._evaluation_params()
        metrics = self._evaluate(params, self._validation_dataset)
        self.io_handler.log(LogCategory.EVAL_METRICS, metrics, self._epoch)
        best_loss = float(self._state.extras["best_validation_loss"])
        if metrics["loss"] < best_loss:
            best_loss = metrics["loss"]
            self._best_params = params
            self._state = eqx.tree_at(
                lambda s: s.extras,
                self._state,
                replicate(
                    {
                        "best_validation_loss": jnp.asarray(best_loss, jnp.float32),
                        "best_epoch": jnp.asarray(self._epoch, jnp.int32),
                    },
                    self._mesh,
                ),
            )
            if self._epoch > 0:
                self.io_handler.save_checkpoint(self._state, self._epoch)
        self.io_handler.log(
            LogCategory.BEST_MODEL,
            {
                "best_loss": best_loss,
                "best_epoch": int(self._state.extras["best_epoch"]),
            },
            self._epoch,
        )

    def _check_checkpoint_dataset_info(self, dataset_info: DatasetInfo) -> None:
        """Fails if a checkpoint to resume from was made for a data set with other
        elements or another cutoff (its dataset_info.json says so)."""
        output_dir = self.io_handler.config.local_model_output_dir
        if (
            not self.io_handler.config.restore_checkpoint_if_exists
            or output_dir is None
        ):
            return
        path = os.path.join(output_dir, "dataset_info.json")
        if not os.path.exists(path):
            return
        saved = DatasetInfo.load_json(path)
        problems = []
        if saved.allowed_atomic_numbers != dataset_info.allowed_atomic_numbers:
            problems.append(
                f"elements {saved.allowed_atomic_numbers} in the checkpoint, "
                f"{dataset_info.allowed_atomic_numbers} now"
            )
        if saved.cutoff_distance_angstrom != dataset_info.cutoff_distance_angstrom:
            problems.append(
                f"cutoff {saved.cutoff_distance_angstrom} Å in the checkpoint, "
                f"{dataset_info.cutoff_distance_angstrom} Å now"
            )
        if problems:
            raise IncompatibleCheckpointError(
                "Cannot resume: the checkpoint was made for another data set ("
                + "; ".join(problems)
                + ")."
            )
