"""fit: the loop as a function over the train and eval steps and a checkpointer."""

import dataclasses

import optax
import pytest
from jax.sharding import Mesh

from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.models import ForceField
from mlip_eqx.models.loss import MSELoss
from mlip_eqx.training import (
    Checkpointer,
    OptimizerConfig,
    TrainingIOHandlerConfig,
    TrainingLoopConfig,
    TrainingProgress,
    TrainingState,
    evaluate,
    fit,
    get_default_mlip_optimizer,
    init_training_state,
    initial_progress,
    make_eval_step,
    make_train_step,
    training_mesh,
)
from mlip_eqx.training.log_fanout import LogCategory
from mlip_eqx.training.training_step import EvalStep, TrainStep
from tests.training.test_training_loop import build_splits_and_info, pair_force_field


@dataclasses.dataclass(frozen=True)
class FitPieces:
    """The pair model of the loop tests with its optimizer, mesh and steps."""

    force_field: ForceField
    optimizer: optax.GradientTransformation
    mesh: Mesh
    train_step: TrainStep
    eval_step: EvalStep
    train: GraphDataset
    validation: GraphDataset

    def fresh_state(self) -> TrainingState:
        return init_training_state(self.force_field, self.optimizer, mesh=self.mesh)

    def fit(self, start: TrainingProgress, num_epochs: int, **options):
        """``fit`` of the built-in (or ``options["train_step"]``) step."""
        train_step = options.pop("train_step", self.train_step)
        config = TrainingLoopConfig(
            num_epochs=num_epochs, eval_num_graphs=options.pop("eval_num_graphs", None)
        )
        return fit(
            train_step,
            self.eval_step,
            start,
            self.train,
            self.validation,
            self.mesh,
            config,
            **options,
        )


def fit_pieces(splits, info) -> FitPieces:
    force_field = pair_force_field(info)
    loss = MSELoss()
    optimizer = get_default_mlip_optimizer(OptimizerConfig(warmup_steps=0))
    mesh = training_mesh(False)
    return FitPieces(
        force_field,
        optimizer,
        mesh,
        make_train_step(force_field, loss, optimizer, mesh),
        make_eval_step(force_field, loss, mesh),
        splits[0],
        splits[1],
    )


@pytest.fixture(scope="module")
def pieces():
    splits, info = build_splits_and_info()
    return fit_pieces(splits, info)


def test_fit_runs_a_custom_step_and_returns_the_best_progress(pieces, tmp_path):
    epochs_of_steps = []

    def train_step(state, batches, epoch):
        """The user's step: an argument of fit."""
        epochs_of_steps.append(epoch)
        return pieces.train_step(state, batches, epoch)

    checkpointer = Checkpointer(
        TrainingIOHandlerConfig(local_model_output_dir=tmp_path)
    )
    records = []
    options = dict(
        train_step=train_step,
        checkpointer=checkpointer,
        log=lambda c, m, e: records.append((c, dict(m), e)),
    )
    end = pieces.fit(initial_progress(pieces.fresh_state()), 2, **options)

    train = pieces.train
    assert end.epoch == 2
    assert epochs_of_steps == [1] * train.num_batches(1) + [2] * train.num_batches(2)
    assert int(end.state.num_steps) == len(epochs_of_steps)
    evaluations = [
        (e, m["loss"]) for c, m, e in records if c == LogCategory.EVAL_METRICS
    ]
    assert [e for e, _ in evaluations] == [0, 1, 2]
    best_epoch, best_loss = min(evaluations, key=lambda pair: pair[1])
    assert int(end.state.best_model.epoch) == best_epoch > 0
    assert float(end.state.best_model.loss) == pytest.approx(best_loss)
    # The best parameters reproduce the best validation loss.
    again = evaluate(
        pieces.eval_step, end.best_params, pieces.validation, pieces.mesh, best_epoch
    )
    assert again["loss"] == pytest.approx(best_loss, rel=1e-5)
    # Saved: every new best (with max_checkpoints_to_keep=5, all) and the last.
    improving = [
        e
        for e, loss in evaluations[1:]
        if loss < min(earlier for _, earlier in evaluations[:e])
    ]
    assert checkpointer.saved_epochs() == sorted({*improving, 2})

    # A run that has reached num_epochs trains no more; it only logs the cleanup.
    records.clear()
    steps_before = len(epochs_of_steps)
    unchanged = pieces.fit(end, 2, **options)
    assert unchanged.epoch == 2 and len(epochs_of_steps) == steps_before
    assert records == [(LogCategory.CLEANUP_AFTER_CKPT_RESTORATION, {}, 2)]


def test_fit_evaluates_the_first_eval_num_graphs_structures(pieces):
    start = initial_progress(pieces.fresh_state())
    two = pieces.validation.subset(range(2))
    expected = evaluate(pieces.eval_step, start.best_params, two, pieces.mesh, 0)
    full = evaluate(
        pieces.eval_step, start.best_params, pieces.validation, pieces.mesh, 0
    )
    assert full["loss"] != pytest.approx(expected["loss"])
    records = []
    pieces.fit(
        start, 1, eval_num_graphs=2, log=lambda c, m, e: records.append((c, m, e))
    )
    first = [m for c, m, e in records if (c, e) == (LogCategory.EVAL_METRICS, 0)]
    assert [m["loss"] for m in first] == [pytest.approx(expected["loss"])]
