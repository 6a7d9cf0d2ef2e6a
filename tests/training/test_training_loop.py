import json
import logging
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlip_eqx.data import ASEAtomsReader, GraphDatasetBuilder
from mlip_eqx.data.demo import generate_demo_structures
from mlip_eqx.models import ForceField
from mlip_eqx.models.loss import MSELoss
from mlip_eqx.models.loss.reductions import Max
from mlip_eqx.training import (
    TrainingIOHandler,
    TrainingLoop,
    apply_gradients,
    get_default_mlip_optimizer,
    loss_and_gradients,
    shard_step,
    training_mesh,
)
from mlip_eqx.training.optimizer_config import OptimizerConfig
from mlip_eqx.training.training_io_handler import LogCategory
from mlip_eqx.training.training_loop import IncompatibleCheckpointError
from tests.helpers.pair_network import PairNetwork
from tests.helpers.subprocesses import run_script


def build_splits_and_info():
    """Small periodic EMT structures (4 atoms): train 28, validation 6, test 6."""
    structures = generate_demo_structures(40, seed=5, repeat=1)
    reader = ASEAtomsReader(structures[:28], structures[28:34], structures[34:])
    builder = GraphDatasetBuilder(
        reader, GraphDatasetBuilder.Config(graph_cutoff_angstrom=4.0, batch_size=4)
    )
    builder.prepare_datasets()
    return builder.get_splits(), builder.dataset_info


@pytest.fixture(scope="module")
def splits_and_info():
    return build_splits_and_info()


def pair_force_field(dataset_info, seed=0):
    network = PairNetwork(PairNetwork.Config(), dataset_info)
    return ForceField.from_mlip_network(network, predict_stress=True, seed=seed)


def make_loop(
    splits, info, epochs, io_handler=None, should_parallelize=False, **config
):
    train, validation, _ = splits
    return TrainingLoop(
        train_dataset=train,
        validation_dataset=validation,
        force_field=pair_force_field(info),
        loss=MSELoss(),
        optimizer=get_default_mlip_optimizer(OptimizerConfig(warmup_steps=0)),
        config=TrainingLoop.Config(num_epochs=epochs, **config),
        io_handler=io_handler,
        should_parallelize=should_parallelize,
    )


def flat(tree):
    return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(tree)])


def test_guide_example_runs_as_written(splits_and_info, tmp_path, caplog):
    (train_set, validation_set, test_set), dataset_info = splits_and_info
    force_field = pair_force_field(dataset_info)
    loss = MSELoss()
    optimizer = get_default_mlip_optimizer()
    records = []

    def train_logging_fun(category, to_log, epoch_number):
        records.append((category, dict(to_log), epoch_number))

    io_config = TrainingIOHandler.Config(local_model_output_dir=tmp_path / "run")
    io_handler = TrainingIOHandler(io_config, lambda source: None)
    io_handler.attach_logger(train_logging_fun)
    config = TrainingLoop.Config(num_epochs=2)
    # The guide's example, with mlip replaced by mlip_eqx.
    training_loop = TrainingLoop(
        train_dataset=train_set,
        validation_dataset=validation_set,
        force_field=force_field,
        loss=loss,
        optimizer=optimizer,
        config=config,
        io_handler=io_handler,
        should_parallelize=len(jax.devices()) > 1,
    )
    training_loop.run()
    final_training_state = training_loop.training_state
    final_params = final_training_state.params
    best_params = training_loop.best_model.params
    test_metrics = training_loop.test(test_set)

    assert int(final_training_state.num_steps) == 2 * len(train_set)
    assert jax.tree.structure(final_params) == jax.tree.structure(best_params)
    categories = [category for category, _, _ in records]
    assert categories.count(LogCategory.TRAIN_METRICS) == 2
    assert categories.count(LogCategory.EVAL_METRICS) == 3  # epochs 0, 1, 2
    assert categories[-1] == LogCategory.TEST_METRICS
    train_record = next(r for c, r, _ in records if c == LogCategory.TRAIN_METRICS)
    assert {"loss", "learning_rate", "runtime_in_seconds", "graphs_per_second"} <= set(
        train_record
    )
    assert {"loss", "mae_f", "rmse_e"} <= set(test_metrics)
    assert (tmp_path / "run" / "dataset_info.json").exists()
    assert (tmp_path / "run" / "model").is_dir()


def test_training_lowers_validation_loss_and_best_model_is_best(splits_and_info):
    splits, info = splits_and_info
    records = []
    handler = TrainingIOHandler()
    handler.attach_logger(lambda c, m, e: records.append((c, dict(m), e)))
    loop = make_loop(splits, info, 4, handler)
    loop.run()
    eval_losses = [m["loss"] for c, m, _ in records if c == LogCategory.EVAL_METRICS]
    assert eval_losses[-1] < 0.5 * eval_losses[0]
    best = [m for c, m, _ in records if c == LogCategory.BEST_MODEL][-1]
    assert best["best_loss"] == pytest.approx(min(eval_losses))
    # The best model reproduces the best validation loss.
    best_loop_loss = loop.test(splits[1])["loss"]
    assert best_loop_loss == pytest.approx(best["best_loss"], rel=1e-5)


def test_default_io_handler_logs_lines(splits_and_info, caplog):
    splits, info = splits_and_info
    with caplog.at_level(logging.INFO, logger="mlip_eqx"):
        make_loop(splits, info, 1).run()
    lines = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("Epoch")
    ]
    assert any(line.startswith("Epoch 1 training: ") for line in lines), lines
    assert any(line.startswith("Epoch 0 validation: ") for line in lines)


def test_resume_with_other_elements_fails_before_training(splits_and_info, tmp_path):
    splits, info = splits_and_info
    config = TrainingIOHandler.Config(local_model_output_dir=tmp_path)
    make_loop(splits, info, 1, TrainingIOHandler(config)).run()
    other = json.loads((tmp_path / "dataset_info.json").read_text())
    other["cutoff_distance_angstrom"] = 5.0
    (tmp_path / "dataset_info.json").write_text(json.dumps(other))
    restore = TrainingIOHandler.Config(
        local_model_output_dir=tmp_path, restore_checkpoint_if_exists=True
    )
    records = []
    handler = TrainingIOHandler(restore)
    handler.attach_logger(lambda c, m, e: records.append(c))
    loop = make_loop(splits, info, 2, handler)  # the run starts in run()
    with pytest.raises(IncompatibleCheckpointError, match="cutoff 5.0 Å"):
        loop.run()
    assert records == [] and handler.saved_epochs() == [1]


def test_the_run_starts_at_the_first_use_not_at_construction(splits_and_info, tmp_path):
    splits, info = splits_and_info
    output = tmp_path / "run"
    config = TrainingIOHandler.Config(local_model_output_dir=output)
    loop = make_loop(splits, info, 1, TrainingIOHandler(config))
    assert not output.exists()
    # The caller's test for "from scratch" starts the run (locks, writes the info).
    assert loop.epoch_number == 0
    assert sorted(p.name for p in output.iterdir()) == [
        ".lock",
        "dataset_info.json",
        "model",
    ]
    np.testing.assert_array_equal(
        flat(loop.best_model.params), flat(pair_force_field(info).params)
    )
    resumed = make_loop(
        splits,
        info,
        1,
        TrainingIOHandler(config.replace(restore_checkpoint_if_exists=True)),
    )
    loop.run()
    assert resumed.epoch_number == 1


def counting_step(state, batches, epoch, *, architecture, loss, optimizer):
    """A custom step from the public pieces: counts its calls in the extras and
    records the largest absolute gradient."""
    gradients, metrics = loss_and_gradients(
        state.params, architecture, loss, batches, epoch
    )
    leaves = jax.tree.leaves(gradients)
    largest = jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in leaves]))
    state, update_metrics = apply_gradients(state, gradients, optimizer)
    calls = state.extras["calls"] + 1
    state = eqx.tree_at(lambda s: s.extras["calls"], state, calls)
    return state, metrics | update_metrics | {"max_gradient": Max(largest)}


def test_custom_step_runs_in_the_loop_with_checkpoints_and_resume(
    splits_and_info, tmp_path
):
    splits, info = splits_and_info
    train, validation, _ = splits
    force_field = pair_force_field(info)
    optimizer = get_default_mlip_optimizer(OptimizerConfig(warmup_steps=0))
    _, architecture = force_field.partition()

    def loop(epochs, restore):
        records = []
        handler = TrainingIOHandler(
            TrainingIOHandler.Config(
                local_model_output_dir=tmp_path,
                restore_checkpoint_if_exists=restore,
                restore_optimizer_state=restore,
            )
        )
        handler.attach_logger(lambda c, m, e: records.append((c, dict(m))))
        step = shard_step(
            counting_step,
            training_mesh(False),
            donate_state=True,
            architecture=architecture,
            loss=MSELoss(),
            optimizer=optimizer,
        )
        training = TrainingLoop(
            train,
            validation,
            force_field,
            MSELoss(),
            optimizer,
            TrainingLoop.Config(num_epochs=epochs),
            io_handler=handler,
            train_step=step,
            extras={"calls": jnp.zeros((), jnp.int32), "tag": jnp.arange(3.0)},
        )
        training.run()
        return training, records

    first, records = loop(2, restore=False)
    steps = train.num_batches(1) + train.num_batches(2)
    assert int(first.training_state.extras["calls"]) == steps
    assert int(first.training_state.num_steps) == steps
    train_records = [m for c, m in records if c == LogCategory.TRAIN_METRICS]
    assert len(train_records) == 2 and all(m["max_gradient"] > 0 for m in train_records)
    assert first.training_state.extras["tag"].tolist() == [0.0, 1.0, 2.0]
    # Resuming restores the user's extras from the last checkpoint.
    resumed, _ = loop(3, restore=True)
    saved = first.io_handler.latest_epoch()
    expected = sum(train.num_batches(e) for e in range(1, 4) if e > saved) + sum(
        train.num_batches(e) for e in range(1, saved + 1)
    )
    assert int(resumed.training_state.extras["calls"]) == expected
    assert resumed.training_state.extras["tag"].tolist() == [0.0, 1.0, 2.0]


PARALLEL = textwrap.dedent(
    """
    import math, os, sys
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = flags + " --xla_force_host_platform_device_count=2"
    sys.path.insert(0, os.getcwd())
    import jax
    from mlip_eqx.training import TrainingIOHandler
    from mlip_eqx.training.training_io_handler import LogCategory
    from tests.training.test_training_loop import build_splits_and_info, make_loop

    assert len(jax.devices()) == 2
    splits, info = build_splits_and_info()
    records = []
    handler = TrainingIOHandler()
    handler.attach_logger(lambda c, m, e: records.append((c, dict(m))))
    loop = make_loop(splits, info, 3, handler, should_parallelize=True)
    loop.run()
    steps = sum(math.ceil(splits[0].num_batches(e) / 2) for e in (1, 2, 3))
    assert int(loop.training_state.num_steps) == steps, loop.training_state.num_steps
    losses = [m["loss"] for c, m in records if c == LogCategory.EVAL_METRICS]
    assert losses[-1] < losses[0], losses
    print("PARALLEL OK")
    """
)


def test_should_parallelize_uses_all_devices_with_plain_datasets():
    assert "PARALLEL OK" in run_script(PARALLEL)


def test_mixed_sizes_train_in_a_few_shapes_each_compiled_once(tmp_path, caplog):
    small = generate_demo_structures(24, seed=11, repeat=1)
    large = generate_demo_structures(16, seed=12, repeat=2)
    reader = ASEAtomsReader(small[:16] + large[:12], small[16:] + large[12:])
    builder = GraphDatasetBuilder(
        reader, GraphDatasetBuilder.Config(graph_cutoff_angstrom=4.0, batch_size=2)
    )
    builder.prepare_datasets()
    splits = builder.get_splits()
    train, validation = splits[0], splits[1]
    assert len(train.batch_shapes) == 2
    with caplog.at_level(logging.INFO, logger="mlip_eqx"):
        loop = make_loop(splits, builder.dataset_info, epochs=2)
        loop.run()
    messages = [record.getMessage() for record in caplog.records]
    assert sum("Compiling the train step" in m for m in messages) == 2
    assert sum("Compiling the evaluation step" in m for m in messages) == len(
        validation.batch_shapes
    )
    assert any(m.startswith("Training set: 2 batch shape(s)") for m in messages)
    assert loop.training_state.num_steps == 2 * train.num_batches()
