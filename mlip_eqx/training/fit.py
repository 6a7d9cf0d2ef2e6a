"""fit: trains a force field for the configured epochs, a host loop over pure steps.

Like optimistix's ``iterative_solve`` over a solver's ``init``/``step``/``terminate``,
:func:`fit` drives the pure pieces: :func:`~mlip_eqx.training.epoch.train_epoch`
over the user's (or the built-in) train step, :func:`~mlip_eqx.training.epoch.evaluate`
over the eval step, the best-model record, and a
:class:`~mlip_eqx.training.checkpointer.Checkpointer`. Where a run starts (fresh,
or restored from checkpoints) is :func:`~mlip_eqx.training.resume.resume`'s job.
"""

import dataclasses
import logging
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jaxtyping import PyTree

from mlip_eqx.data.batch_shapes import BatchShape
from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.training.best_model import update_best_model_record
from mlip_eqx.training.checkpointer import Checkpointer
from mlip_eqx.training.ema import debiased_ema_params
from mlip_eqx.training.epoch import evaluate, train_epoch
from mlip_eqx.training.log_fanout import LogCategory, Logger
from mlip_eqx.training.mesh import replicate
from mlip_eqx.training.protocol import (
    check_protocol,
    count_evaluation,
    has_stopped,
    in_stage_two,
    reduce_on_plateau,
    stage_two_due,
    start_stage_two,
)
from mlip_eqx.training.training_loop_config import TrainingLoopConfig
from mlip_eqx.training.training_state import TrainingState
from mlip_eqx.training.training_step import EvalStep, TrainStep

logger = logging.getLogger("mlip_eqx")

__all__ = ["TrainingProgress", "evaluation_params", "fit", "initial_progress"]


@dataclasses.dataclass(frozen=True)
class TrainingProgress:
    """Where a run stands after an epoch.

    Attributes:
        state: The training state (with its best-model record).
        epoch: The last completed epoch (0: none).
        best_params: The parameters of the lowest validation loss so far (those
            of ``state.best_model.epoch``; a copy, never donated).
    """

    state: TrainingState
    epoch: int
    best_params: PyTree


def evaluation_params(state: TrainingState, use_ema_params: bool) -> PyTree:
    """A copy of the parameters of ``state`` to evaluate and keep as best model
    (a copy: the next train step donates the state's buffers).

    Args:
        state: The training state.
        use_ema_params: Take the bias-corrected EMA of the parameters (once it
            has been updated) instead of the raw ones.
    """
    if use_ema_params and int(state.ema_state.step) > 0:
        params = debiased_ema_params(state.ema_state)
    else:
        params = state.params
    return jax.tree.map(jnp.copy, params)


def initial_progress(
    state: TrainingState, use_ema_params_for_eval: bool = True
) -> TrainingProgress:
    """The progress of a run that starts from ``state`` (epoch 0, whose
    parameters are the best so far)."""
    return TrainingProgress(state, 0, evaluation_params(state, use_ema_params_for_eval))


def _ignore_record(category: LogCategory, to_log: dict[str, Any], epoch: int) -> None:
    """A logger that drops every record."""


def fit(
    train_step: TrainStep,
    eval_step: EvalStep,
    start: TrainingProgress,
    train_dataset: GraphDataset,
    validation_dataset: GraphDataset,
    mesh: Mesh,
    config: TrainingLoopConfig,
    *,
    checkpointer: Checkpointer | None = None,
    log: Logger = _ignore_record,
    train_shapes: set[BatchShape] | None = None,
    eval_shapes: set[BatchShape] | None = None,
    stage_two_steps: tuple[TrainStep, EvalStep] | None = None,
) -> TrainingProgress:
    """Trains from ``start`` until ``config.num_epochs`` epochs are done, or
    until it stops early.

    Each epoch runs ``train_step`` over every training batch (in an order fixed by
    the dataset's seed and the epoch), then evaluates the validation set with the
    EMA (or raw) parameters. A new best validation loss keeps those parameters as
    the best model; every new best and the last epoch are checkpointed. A run
    that starts after epoch 0 (resumed) first logs
    ``CLEANUP_AFTER_CKPT_RESTORATION``; a fresh one evaluates epoch 0 if
    ``config.run_eval_at_start``.

    After each evaluation the protocol of ``config`` decides (from the state's
    :class:`~mlip_eqx.training.protocol_state.ProtocolState` and the best-model
    record, so that a resumed run decides alike): the learning rate is reduced
    after ``lr_plateau_patience`` evaluations without a new best; after
    ``early_stopping_patience`` of them the run ends (its last epoch is
    checkpointed; resuming it trains no more), or, in the first stage of a run
    with ``stage_two_epoch``, the second stage starts. From ``stage_two_epoch``
    on (or that earlier start), ``stage_two_steps`` train and evaluate, and the
    best model and the counts start again (see
    :func:`~mlip_eqx.training.protocol.start_stage_two`). Each decision is
    logged as ``TRAINING_DECISION``.

    Example::

        checkpointer = Checkpointer(TrainingIOHandlerConfig(
            local_model_output_dir="run", restore_checkpoint_if_exists=True))
        start = resume(init_training_state(force_field, optimizer), checkpointer,
                       force_field.dataset_info)
        checkpointer.save_dataset_info(force_field.dataset_info)
        mesh = training_mesh(False)
        end = fit(make_train_step(force_field, loss, optimizer, mesh),
                  make_eval_step(force_field, loss, mesh), start, train_set,
                  validation_set, mesh, TrainingLoopConfig(num_epochs=10),
                  checkpointer=checkpointer, log=log_metrics_to_line)
        best_force_field = force_field.with_params(end.best_params)

    Args:
        train_step: ``(state, batches, epoch) -> (state, metrics)`` jitted over
            ``mesh``: :func:`make_train_step` or the user's own step.
        eval_step: ``(params, batches, epoch) -> metrics`` over ``mesh``, with a
            ``"loss"`` metric.
        start: Where the run starts (:func:`initial_progress` or
            :func:`~mlip_eqx.training.resume.resume`); its state is donated.
        train_dataset: The training batches.
        validation_dataset: The validation batches (the first
            ``config.eval_num_graphs`` structures, if set).
        mesh: The device mesh of the steps.
        config: The loop settings.
        checkpointer: Saves the checkpoints (None: none are saved).
        log: Receives every record (e.g. a
            :class:`~mlip_eqx.training.log_fanout.LogFanOut`).
        train_shapes: The batch shapes ``train_step`` has run on (updated; a new
            one is logged as a compilation).
        eval_shapes: The same for ``eval_step``.
        stage_two_steps: The train and eval steps of the second stage (its loss
            and learning rate); needed if ``config.stage_two_epoch`` is set.

    Returns:
        The progress after the last epoch.

    Raises:
        CheckpointSaveError: If a checkpoint cannot be written.
        ValueError: If ``config.stage_two_epoch`` is set without
            ``stage_two_steps``, or ``config.lr_plateau_patience`` with an
            optimizer that does not record its learning rate.
    """
    if config.stage_two_epoch is not None and stage_two_steps is None:
        raise ValueError(
            "fit: TrainingLoopConfig.stage_two_epoch is set, but no stage_two_steps "
            "(the train and eval steps of the second stage's loss) were given."
        )
    check_protocol(config, start.state)
    validation = validation_dataset
    if config.eval_num_graphs is not None:
        count = min(config.eval_num_graphs, len(validation_dataset.graphs))
        validation = validation_dataset.subset(range(count))
    for name, dataset in (("Training", train_dataset), ("Validation", validation)):
        logger.info("%s set: %s", name, dataset.describe_batching())
    # By stage: the steps, and the batch shapes each step has run on.
    steps = [(train_step, eval_step), stage_two_steps or (train_step, eval_step)]
    compiled_shapes = [
        (
            set() if train_shapes is None else train_shapes,
            set() if eval_shapes is None else eval_shapes,
        ),
        (set(), set()),
    ]

    def stage_of(state: TrainingState) -> int:
        return int(in_stage_two(state))

    def decide(
        state: TrainingState, improved: bool, epoch: int
    ) -> tuple[TrainingState, list[dict[str, Any]]]:
        """The protocol's decisions after the evaluation of ``epoch``."""
        state = eqx.tree_at(
            lambda s: s.protocol, state, count_evaluation(state.protocol, improved)
        )
        state, reduction = reduce_on_plateau(state, config)
        decisions = [] if reduction is None else [reduction]
        if has_stopped(state, config):
            record = state.best_model
            decisions.append(
                {
                    "decision": "early_stop",
                    "best_epoch": int(record.epoch),
                    "best_loss": float(record.loss),
                }
            )
        return state, decisions

    def evaluate_and_track_best(progress: TrainingProgress) -> TrainingProgress:
        params = evaluation_params(progress.state, config.use_ema_params_for_eval)
        epoch = progress.epoch
        stage = stage_of(progress.state)
        metrics = evaluate(
            steps[stage][1], params, validation, mesh, epoch, compiled_shapes[stage][1]
        )
        log(LogCategory.EVAL_METRICS, metrics, epoch)
        state = progress.state
        record, improved = update_best_model_record(
            state.best_model, metrics["loss"], epoch
        )
        state = eqx.tree_at(lambda s: s.best_model, state, record)
        state, decisions = decide(state, improved, epoch)
        state = _replicate_records(state, mesh)
        best_params = params if improved else progress.best_params
        # Checkpoints: every new best model, and the last epoch (to resume from).
        last = epoch == config.num_epochs or has_stopped(state, config)
        if checkpointer is not None and epoch > 0 and (improved or last):
            checkpointer.save(state, epoch, metrics["loss"])
        best = {"best_loss": float(record.loss), "best_epoch": int(record.epoch)}
        log(LogCategory.BEST_MODEL, best, epoch)
        for decision in decisions:
            _log_decision(log, decision, epoch, state)
        return TrainingProgress(state, epoch, best_params)

    progress = start
    if progress.epoch > 0:
        log(LogCategory.CLEANUP_AFTER_CKPT_RESTORATION, {}, progress.epoch)
        if has_stopped(progress.state, config):
            logger.info(
                "The run stopped early at epoch %d; it trains no more.",
                progress.epoch,
            )
    elif config.run_eval_at_start:
        progress = evaluate_and_track_best(progress)
    while progress.epoch < config.num_epochs and not has_stopped(
        progress.state, config
    ):
        epoch = progress.epoch + 1
        state = progress.state
        if stage_two_due(state, config, epoch):
            state = _replicate_records(start_stage_two(state, epoch), mesh)
            decision = {
                "decision": "stage_two_started",
                "energy_weight": config.stage_two_energy_weight,
                "forces_weight": config.stage_two_forces_weight,
                "learning_rate": config.stage_two_learning_rate,
            }
            _log_decision(log, decision, epoch, state)
        stage = stage_of(state)
        state, summary = train_epoch(
            steps[stage][0],
            state,
            train_dataset,
            mesh,
            epoch,
            f"Epoch {epoch}/{config.num_epochs}",
            compiled_shapes[stage][0],
            config.batches_per_step,
        )
        if summary.get("skipped_updates"):
            logger.warning(
                "Epoch %d: %d steps had non-finite gradients and were skipped.",
                epoch,
                int(summary["skipped_updates"]),
            )
        log(LogCategory.TRAIN_METRICS, summary, epoch)
        progress = evaluate_and_track_best(
            TrainingProgress(state, epoch, progress.best_params)
        )
        if checkpointer is not None:
            checkpointer.upload_completed_saves()
    if checkpointer is not None:
        checkpointer.wait_until_finished()
    _warn_if_validation_never_improved(progress.state)
    return progress


def _replicate_records(state: TrainingState, mesh: Mesh) -> TrainingState:
    """The state with its best-model record and protocol state (changed on the
    host) replicated on the mesh of the steps."""
    return eqx.tree_at(
        lambda s: (s.best_model, s.protocol),
        state,
        replicate((state.best_model, state.protocol), mesh),
    )


def _log_decision(
    log: Logger, decision: dict[str, Any], epoch: int, state: TrainingState
) -> None:
    """Logs a decision of the protocol as a record and as a sentence."""
    log(LogCategory.TRAINING_DECISION, decision, epoch)
    kind = decision["decision"]
    if kind == "learning_rate_reduced":
        logger.info(
            "Epoch %d: the learning rate is reduced to %.4g (from %.4g) after a "
            "validation plateau.",
            epoch,
            decision["learning_rate"],
            decision["previous_learning_rate"],
        )
    elif kind == "stage_two_started":
        logger.info(
            "Epoch %d: stage two starts (energy weight %g, forces weight %g, "
            "learning rate %g); the best model is chosen again under its loss.",
            epoch,
            decision["energy_weight"],
            decision["forces_weight"],
            decision["learning_rate"],
        )
    else:
        logger.info(
            "Epoch %d: early stop after %d evaluations without a lower validation "
            "loss; best epoch %d (loss %.6g).",
            epoch,
            int(state.protocol.evaluations_without_improvement),
            decision["best_epoch"],
            decision["best_loss"],
        )


def _warn_if_validation_never_improved(state: TrainingState) -> None:
    record = state.best_model
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
