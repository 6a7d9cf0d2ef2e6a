"""The training protocol: learning-rate reduction on a validation plateau, early
stopping and a second stage, each resumed exactly from its checkpoints."""

import dataclasses
import logging

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mlip_eqx.checkpoint.format import (
    PARAMS_ITEM,
    TRAINING_STATE_ITEM,
    open_checkpoint_manager,
    save_arguments,
    split_state,
)
from mlip_eqx.models.loss import MSELoss
from mlip_eqx.models.loss.reductions import Mean
from mlip_eqx.training import (
    Checkpointer,
    OptimizerConfig,
    TrainingIOHandler,
    TrainingIOHandlerConfig,
    TrainingLoop,
    TrainingLoopConfig,
    TrainingState,
    apply_gradients,
    evaluate,
    fit,
    get_default_mlip_optimizer,
    init_training_state,
    initial_progress,
    make_eval_step,
    make_train_step,
    resume,
    training_mesh,
)
from mlip_eqx.training.best_model import init_best_model_record
from mlip_eqx.training.ema import ema_init
from mlip_eqx.training.log_fanout import LogCategory
from mlip_eqx.training.protocol import reduce_on_plateau
from mlip_eqx.training.protocol_state import init_protocol_state
from mlip_eqx.training.trackers import tracker_scalars
from mlip_eqx.training.training_loggers import (
    JsonLinesLogger,
    log_metrics_to_line,
    log_metrics_to_table,
)
from mlip_eqx.utils.config import ConfigError
from tests.training.test_training_loop import (
    build_splits_and_info,
    flat,
    pair_force_field,
)

LEARNING_RATE = 0.01
STAGE_TWO_LEARNING_RATE = 1e-3


@dataclasses.dataclass(frozen=True)
class Pieces:
    """The pair model of the loop tests, with the steps of both stages (losses
    with extended metrics: the training records carry the loss weights)."""

    force_field: object
    optimizer: optax.GradientTransformation
    mesh: object
    steps: tuple
    stage_two_steps: tuple
    train: object
    validation: object
    test: object
    info: object

    def fresh_state(self):
        return init_training_state(self.force_field, self.optimizer, mesh=self.mesh)


@pytest.fixture(scope="module")
def pieces():
    (train, validation, test), info = build_splits_and_info()
    force_field = pair_force_field(info)
    loss = MSELoss(extended_metrics=True)
    stage_two_loss = loss.with_weights(1000.0, 100.0)
    optimizer = get_default_mlip_optimizer(
        OptimizerConfig(warmup_steps=0, init_learning_rate=LEARNING_RATE)
    )
    mesh = training_mesh(False)
    return Pieces(
        force_field,
        optimizer,
        mesh,
        (
            make_train_step(force_field, loss, optimizer, mesh),
            make_eval_step(force_field, loss, mesh),
        ),
        (
            make_train_step(
                force_field,
                stage_two_loss,
                optimizer,
                mesh,
                learning_rate=STAGE_TWO_LEARNING_RATE,
            ),
            make_eval_step(force_field, stage_two_loss, mesh),
        ),
        train,
        validation,
        test,
        info,
    )


def scripted(eval_step, losses):
    """``eval_step`` with the validation loss of epoch ``e`` set to ``losses[e]``
    (the other metrics are real)."""

    def step(params, batches, epoch):
        loss = jnp.asarray(losses[epoch], jnp.float32)
        return eval_step(params, batches, epoch) | {
            "loss": Mean(loss, jnp.ones((), jnp.float32))
        }

    return step


def run(pieces, directory, num_epochs, losses=None, restore=False, **protocol):
    """fit (resumed from ``directory`` if ``restore``); returns the end and the
    records."""
    checkpointer = None
    if directory is not None:
        checkpointer = Checkpointer(
            TrainingIOHandlerConfig(
                local_model_output_dir=directory,
                restore_checkpoint_if_exists=restore,
                restore_optimizer_state=restore,
            )
        )
    start = resume(pieces.fresh_state(), checkpointer, pieces.info)
    train_step, eval_step = pieces.steps
    stage_two_steps = pieces.stage_two_steps
    if losses is not None:
        eval_step = scripted(eval_step, losses)
        stage_two_steps = (stage_two_steps[0], scripted(stage_two_steps[1], losses))
    records = []
    end = fit(
        train_step,
        eval_step,
        start,
        pieces.train,
        pieces.validation,
        pieces.mesh,
        TrainingLoopConfig(num_epochs=num_epochs, **protocol),
        checkpointer=checkpointer,
        log=lambda c, m, e: records.append((c, dict(m), e)),
        stage_two_steps=stage_two_steps,
    )
    return end, records


def of(records, category, name):
    """``{epoch: value}`` of a metric of a category's records."""
    return {e: m[name] for c, m, e in records if c == category and name in m}


def decisions(records):
    return [
        (e, m["decision"]) for c, m, e in records if c == LogCategory.TRAINING_DECISION
    ]


def assert_same_run(actual, expected):
    """Two ends of runs that must be bit-identical."""
    for a, b in (
        (actual.state.params, expected.state.params),
        (actual.best_params, expected.best_params),
        (actual.state.protocol, expected.state.protocol),
        (actual.state.best_model, expected.state.best_model),
    ):
        np.testing.assert_array_equal(flat(a), flat(b))
    assert actual.epoch == expected.epoch
    assert int(actual.state.num_steps) == int(expected.state.num_steps)


# Epochs 0-7: new lowest at 0, 1 and 7; a plateau of 2 evaluations at 3 and 5.
PLATEAU_LOSSES = [10.0, 9.0, 9.5, 9.5, 9.2, 9.1, 9.3, 8.0]


def test_plateau_reduces_the_rate_and_a_resumed_run_continues_alike(pieces, tmp_path):
    protocol = dict(lr_plateau_patience=2, lr_plateau_factor=0.5)
    end, records = run(pieces, tmp_path / "a", 7, PLATEAU_LOSSES, **protocol)

    assert decisions(records) == [
        (3, "learning_rate_reduced"),
        (5, "learning_rate_reduced"),
    ]
    rates = of(records, LogCategory.TRAIN_METRICS, "learning_rate")
    expected = [LEARNING_RATE] * 3 + [LEARNING_RATE / 2] * 2 + [LEARNING_RATE / 4] * 2
    np.testing.assert_allclose([rates[e] for e in range(1, 8)], expected, rtol=1e-6)
    reduced = of(records, LogCategory.TRAINING_DECISION, "learning_rate")
    assert reduced == pytest.approx({3: LEARNING_RATE / 2, 5: LEARNING_RATE / 4})
    assert float(end.state.protocol.learning_rate_factor) == pytest.approx(0.25)
    assert int(end.state.protocol.plateau_evaluations) == 0  # epoch 7 improved
    assert int(end.state.best_model.epoch) == 7

    # Interrupted after epoch 4 (reduced once, one evaluation into a plateau)
    # and resumed: the same rates, counts and parameters.
    first, _ = run(pieces, tmp_path / "b", 4, PLATEAU_LOSSES, **protocol)
    assert int(first.state.protocol.plateau_evaluations) == 1
    resumed, resumed_records = run(
        pieces, tmp_path / "b", 7, PLATEAU_LOSSES, restore=True, **protocol
    )
    assert decisions(resumed_records) == [(5, "learning_rate_reduced")]
    resumed_rates = of(resumed_records, LogCategory.TRAIN_METRICS, "learning_rate")
    assert resumed_rates == {e: rates[e] for e in (5, 6, 7)}
    assert_same_run(resumed, end)


def test_plateau_reduction_stops_at_the_minimum(pieces):
    config = TrainingLoopConfig(
        num_epochs=10, lr_plateau_patience=1, lr_plateau_factor=0.5, lr_plateau_min=3e-3
    )
    state = pieces.fresh_state()
    rates = []
    for _ in range(3):
        protocol = eqx.tree_at(
            lambda p: p.plateau_evaluations, state.protocol, jnp.asarray(1, jnp.int32)
        )
        state, decision = reduce_on_plateau(
            eqx.tree_at(lambda s: s.protocol, state, protocol), config
        )
        rates.append(None if decision is None else decision["learning_rate"])
        assert int(state.protocol.plateau_evaluations) == 0
    assert rates == [pytest.approx(5e-3), pytest.approx(3e-3), None]
    assert float(state.protocol.learning_rate_factor) == pytest.approx(0.3)


def test_the_factor_scales_the_update_as_the_learning_rate(pieces):
    """A factor f (and a replacement rate) update as the optimizer with that rate."""
    params = {"w": jnp.asarray([1.0, -2.0, 3.0])}
    gradients = {"w": jnp.asarray([0.5, 0.25, -1.0])}

    def updated(optimizer, factor=1.0, learning_rate=None):
        protocol = eqx.tree_at(
            lambda p: p.learning_rate_factor,
            init_protocol_state(),
            jnp.asarray(factor, jnp.float32),
        )
        state = TrainingState(
            params=params,
            optimizer_state=optimizer.init(params),
            ema_state=ema_init(params, 0.99),
            num_steps=jnp.zeros((), jnp.int32),
            key=jax.random.key_data(jax.random.key(0)),
            best_model=init_best_model_record(),
            protocol=protocol,
        )
        new_state, metrics = apply_gradients(state, gradients, optimizer, learning_rate)
        return np.asarray(new_state.params["w"]), float(metrics["learning_rate"].value)

    adam = optax.inject_hyperparams(optax.adam)
    scaled, rate = updated(adam(learning_rate=0.1), factor=0.25)
    reference, _ = updated(adam(learning_rate=0.025))
    np.testing.assert_allclose(scaled, reference, rtol=1e-6)
    assert rate == pytest.approx(0.025)
    replaced, rate = updated(adam(learning_rate=0.1), factor=0.5, learning_rate=0.2)
    reference, _ = updated(adam(learning_rate=0.1))
    np.testing.assert_allclose(replaced, reference, rtol=1e-6)
    assert rate == pytest.approx(0.1)
    with pytest.raises(ValueError, match="records its own"):
        updated(optax.adam(0.1), learning_rate=0.2)


# A new lowest at 0 and 1, then none.
STALLING_LOSSES = [10.0, 9.0, 9.5, 9.6, 9.7, 9.8, 9.9, 9.95]


def test_early_stop_ends_the_run_with_its_best_model(pieces, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mlip_eqx")
    end, records = run(pieces, tmp_path, 7, STALLING_LOSSES, early_stopping_patience=2)
    assert (
        "Epoch 3: early stop after 2 evaluations without a lower validation loss; "
        "best epoch 1 (loss 9)"
    ) in caplog.text
    assert end.epoch == 3  # evaluations 2 and 3 did not improve
    assert decisions(records) == [(3, "early_stop")]
    assert of(records, LogCategory.TRAINING_DECISION, "best_epoch") == {3: 1}
    assert sorted(of(records, LogCategory.TRAIN_METRICS, "loss")) == [1, 2, 3]
    # The best model is that of epoch 1.
    one_epoch, _ = run(pieces, None, 1, STALLING_LOSSES)
    np.testing.assert_array_equal(flat(end.best_params), flat(one_epoch.best_params))
    # The stop is checkpointed: resuming it trains no more.
    again, again_records = run(
        pieces, tmp_path, 7, STALLING_LOSSES, restore=True, early_stopping_patience=2
    )
    assert again.epoch == 3
    assert [c for c, _, _ in again_records] == [
        LogCategory.CLEANUP_AFTER_CKPT_RESTORATION
    ]
    np.testing.assert_array_equal(flat(again.best_params), flat(end.best_params))


def test_stage_two_switches_weights_and_rate_and_resumes_inside(pieces, tmp_path):
    protocol = dict(stage_two_epoch=3)
    end, records = run(pieces, tmp_path / "a", 4, **protocol)

    assert decisions(records) == [(3, "stage_two_started")]
    train = {
        name: of(records, LogCategory.TRAIN_METRICS, name)
        for name in ("energy_weight", "forces_weight", "learning_rate")
    }
    assert train["energy_weight"] == {1: 1.0, 2: 1.0, 3: 1000.0, 4: 1000.0}
    assert train["forces_weight"] == {1: 25.0, 2: 25.0, 3: 100.0, 4: 100.0}
    rates = [train["learning_rate"][e] for e in range(1, 5)]
    np.testing.assert_allclose(rates, [LEARNING_RATE] * 2 + [1e-3] * 2, rtol=1e-6)
    # The best model is chosen again under the second stage's loss.
    assert int(end.state.protocol.stage_two_start) == 3
    best = of(records, LogCategory.BEST_MODEL, "best_epoch")
    assert best[3] == 3 and best[4] in (3, 4)
    evaluations = of(records, LogCategory.EVAL_METRICS, "loss")
    assert float(end.state.best_model.loss) == pytest.approx(
        min(evaluations[3], evaluations[4])
    )

    # Interrupted inside the second stage and resumed: the same run.
    run(pieces, tmp_path / "b", 3, **protocol)
    resumed, resumed_records = run(pieces, tmp_path / "b", 4, restore=True, **protocol)
    assert decisions(resumed_records) == []
    assert of(resumed_records, LogCategory.TRAIN_METRICS, "energy_weight") == {
        4: 1000.0
    }
    assert_same_run(resumed, end)


def test_early_stop_in_stage_one_starts_stage_two(pieces):
    end, records = run(
        pieces, None, 5, STALLING_LOSSES, early_stopping_patience=2, stage_two_epoch=5
    )
    # Stage one stalls at epoch 3, stage two starts at 4 and stalls at 6 > 5.
    assert decisions(records) == [(4, "stage_two_started")]
    assert end.epoch == 5 and int(end.state.protocol.stage_two_start) == 4
    assert of(records, LogCategory.TRAIN_METRICS, "energy_weight")[4] == 1000.0
    assert of(records, LogCategory.BEST_MODEL, "best_epoch")[4] == 4


def test_training_loop_trains_stage_two_with_its_own_steps(pieces):
    splits, info = (pieces.train, pieces.validation, pieces.test), pieces.info
    records = []
    io_handler = TrainingIOHandler(TrainingIOHandlerConfig())
    io_handler.attach_logger(lambda c, m, e: records.append((c, dict(m), e)))
    loop = TrainingLoop(
        splits[0],
        splits[1],
        pair_force_field(info),
        MSELoss(),
        get_default_mlip_optimizer(OptimizerConfig(warmup_steps=0)),
        TrainingLoop.Config(
            num_epochs=2,
            stage_two_epoch=2,
            stage_two_energy_weight=10.0,
            stage_two_forces_weight=1.0,
            stage_two_learning_rate=2e-3,
        ),
        io_handler=io_handler,
    )
    loop.run()
    rates = of(records, LogCategory.TRAIN_METRICS, "learning_rate")
    assert rates == {1: pytest.approx(0.01), 2: pytest.approx(2e-3)}
    assert decisions(records) == [(2, "stage_two_started")]
    # The test loss is that of the second stage (energy 10, forces 1).
    test = loop.test(splits[2])
    stage_two = make_eval_step(
        loop.best_model, MSELoss().with_weights(10.0, 1.0), loop.mesh
    )
    expected = evaluate(stage_two, loop.best_model.params, splits[2], loop.mesh, 2)
    assert test["loss"] == pytest.approx(expected["loss"], rel=1e-6)

    with pytest.raises(ValueError, match="built-in"):
        TrainingLoop(
            splits[0],
            splits[1],
            pair_force_field(info),
            MSELoss(),
            get_default_mlip_optimizer(),
            TrainingLoop.Config(num_epochs=2, stage_two_epoch=2),
            train_step=lambda state, batches, epoch: (state, {}),
        )


def test_bad_protocol_settings(pieces, caplog):
    with pytest.raises(ConfigError, match="lr_plateau_factor"):
        TrainingLoopConfig(num_epochs=3, lr_plateau_factor=1.0)
    with pytest.raises(ConfigError, match="lr_plateau_factor"):
        TrainingLoopConfig(num_epochs=3, lr_plateau_factor=0.0)
    with pytest.raises(ConfigError, match="epoch 4.*num_epochs 3"):
        TrainingLoopConfig(num_epochs=3, stage_two_epoch=4)

    start = initial_progress(pieces.fresh_state())
    with pytest.raises(ValueError, match="stage_two_steps"):
        fit(
            *pieces.steps,
            start,
            pieces.train,
            pieces.validation,
            pieces.mesh,
            TrainingLoopConfig(num_epochs=1, stage_two_epoch=1),
        )
    plain = optax.adam(1e-3)
    with pytest.raises(ValueError, match="records its learning rate"):
        fit(
            make_train_step(pieces.force_field, MSELoss(), plain, pieces.mesh),
            pieces.steps[1],
            initial_progress(init_training_state(pieces.force_field, plain)),
            pieces.train,
            pieces.validation,
            pieces.mesh,
            TrainingLoopConfig(num_epochs=1, lr_plateau_patience=1),
        )

    caplog.set_level(logging.WARNING, logger="mlip_eqx")
    run(pieces, None, 1, lr_plateau_patience=5, early_stopping_patience=2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "lr_plateau_patience is 5" in w and "only 2 evaluations" in w for w in warnings
    )
    assert any("early_stopping_patience is 2" in w for w in warnings)


def test_checkpoint_without_protocol_state_resumes_with_a_fresh_one(pieces, tmp_path):
    """A checkpoint of an earlier version (no protocol arrays) is restored."""
    state = pieces.fresh_state()
    params, rest = split_state(state)
    old_rest = [(path, leaf) for path, leaf in rest if not path.startswith(".protocol")]
    assert len(old_rest) < len(rest)
    manager = open_checkpoint_manager(tmp_path / "model")
    manager.save(
        1,
        args=save_arguments({PARAMS_ITEM: params, TRAINING_STATE_ITEM: old_rest}),
        metrics={"validation_loss": 1.0},
    )
    manager.wait_until_finished()
    manager.close()
    checkpointer = Checkpointer(
        TrainingIOHandlerConfig(
            local_model_output_dir=tmp_path,
            restore_checkpoint_if_exists=True,
            restore_optimizer_state=True,
        )
    )
    restored, epoch = checkpointer.restore_training_state(pieces.fresh_state())
    assert epoch == 1
    np.testing.assert_array_equal(flat(restored.protocol), flat(init_protocol_state()))
    np.testing.assert_array_equal(flat(restored.params), flat(state.params))
    assert jax.tree.structure(restored) == jax.tree.structure(state)


def test_decisions_reach_the_metrics_file_and_trackers_not_the_tables(tmp_path, caplog):
    decision = {
        "decision": "learning_rate_reduced",
        "learning_rate": 0.008,
        "previous_learning_rate": 0.01,
    }
    metrics_file = JsonLinesLogger(tmp_path / "metrics.jsonl")
    metrics_file(LogCategory.TRAINING_DECISION, decision, 4)
    assert metrics_file.records() == [
        {"category": "TRAINING_DECISION", "epoch": 4} | decision
    ]
    assert tracker_scalars(LogCategory.TRAINING_DECISION, decision) == {
        "decision/learning_rate": 0.008,
        "decision/previous_learning_rate": 0.01,
    }
    caplog.set_level(logging.INFO, logger="mlip_eqx")
    log_metrics_to_line(LogCategory.TRAINING_DECISION, decision, 4)
    log_metrics_to_table(LogCategory.TRAINING_DECISION, decision, 4)
    assert caplog.text == ""  # fit logs each decision as a sentence
