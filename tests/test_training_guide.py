"""The code examples of the training guide, run as written (mlip -> mlip_eqx).

The guide's placeholders (``_get_dataset()`` etc.) are defined here with small real
objects; everything else is the guide's text.
"""

import os
from typing import Any

import jax
import pytest

from mlip_eqx.data import ASEAtomsReader, GraphDatasetBuilder
from mlip_eqx.data.demo import generate_demo_structures
from mlip_eqx.models import ForceField
from tests.helpers.pair_network import PairNetwork


@pytest.fixture(scope="module")
def placeholders():
    structures = generate_demo_structures(16, seed=9, repeat=1)
    builder = GraphDatasetBuilder(
        ASEAtomsReader(structures[:12], structures[12:]),
        GraphDatasetBuilder.Config(graph_cutoff_angstrom=4.0, batch_size=4),
    )
    builder.prepare_datasets()
    train_set, validation_set, _ = builder.get_splits()
    network = PairNetwork(PairNetwork.Config(), builder.dataset_info)
    return train_set, validation_set, builder.dataset_info, network


def test_loss_examples():
    import optax

    from mlip_eqx.models.loss import MSELoss

    # uses default weight schedules
    loss = MSELoss()

    # uses a weight flip schedule
    energy_weight_schedule = optax.piecewise_constant_schedule(1.0, {100: 25.0})
    forces_weight_schedule = optax.piecewise_constant_schedule(25.0, {100: 0.04})
    loss = MSELoss(energy_weight_schedule, forces_weight_schedule)

    assert float(loss.energy_weight_schedule(150)) == 25.0
    assert float(loss.forces_weight_schedule(150)) == pytest.approx(1.0)
    assert MSELoss(extended_metrics=True).extended_metrics


def test_optimizer_examples():
    from mlip_eqx.training import OptimizerConfig, get_default_mlip_optimizer

    config_kwargs = {"warmup_steps": 10, "weight_decay": 0.01}

    # with default config
    optimizer = get_default_mlip_optimizer()

    # with modified config
    optimizer = get_default_mlip_optimizer(OptimizerConfig(**config_kwargs))
    assert optimizer.init({"w": jax.numpy.ones(2)}) is not None


def test_io_handler_and_training_loop_examples(placeholders, tmp_path):
    train_set_, validation_set_, dataset_info_, network = placeholders
    uploads = []

    def _get_dataset():
        return train_set_, validation_set_, dataset_info_

    def _get_force_field():
        return ForceField.from_mlip_network(network)

    def _get_loss():
        from mlip_eqx.models.loss import MSELoss

        return MSELoss()

    def _get_optimizer():
        from mlip_eqx.training import get_default_mlip_optimizer

        return get_default_mlip_optimizer()

    config_kwargs = {"local_model_output_dir": tmp_path / "run"}

    # --- The guide's IO handler example. ---
    from mlip_eqx.training import TrainingIOHandler

    io_config = TrainingIOHandler.Config(**config_kwargs)

    def remote_storage_sync_fun(source: str | os.PathLike) -> None:
        """Makes sure local data in source is uploaded to remote storage"""
        uploads.append(source)

    io_handler = TrainingIOHandler(io_config, remote_storage_sync_fun)

    from mlip_eqx.training.training_io_handler import LogCategory

    logged = []

    def train_logging_fun(
        category: LogCategory, to_log: dict[str, Any], epoch_number: int
    ) -> None:
        """Advanced logging function"""
        logged.append(category)

    io_handler.attach_logger(train_logging_fun)

    def _get_training_loop_io_handler():
        return io_handler

    # --- The guide's training loop example. ---
    from mlip_eqx.training import TrainingLoop

    # Prerequisites
    train_set, validation_set, dataset_info = _get_dataset()  # placeholder
    force_field = _get_force_field()  # placeholder
    loss = _get_loss()  # placeholder
    optimizer = _get_optimizer()  # placeholder
    io_handler = _get_training_loop_io_handler()  # placeholder
    config = TrainingLoop.Config(**{"num_epochs": 2})

    # Create TrainingLoop class
    training_loop = TrainingLoop(
        train_dataset=train_set,
        validation_dataset=validation_set,
        force_field=force_field,
        loss=loss,
        optimizer=optimizer,
        config=config,
        io_handler=io_handler,  # also has a default, does not need to be set
        should_parallelize=len(jax.devices()) > 1,  # has a default of False
    )

    # Start the model training
    training_loop.run()

    final_training_state = training_loop.training_state
    final_params = final_training_state.params
    best_params = training_loop.best_model.params

    from mlip_eqx.models.model_io import save_model_to_zip

    save_model_to_zip(tmp_path / "model.zip", training_loop.best_model)
    training_loop.test(validation_set)

    assert jax.tree.structure(final_params) == jax.tree.structure(best_params)
    assert (tmp_path / "run" / "dataset_info.json").exists()
    assert (tmp_path / "run" / "model").is_dir()
    # As in mlip: dataset_info.json once written, then the directory after saves.
    assert os.fspath(uploads[0]) == os.fspath(tmp_path / "run" / "dataset_info.json")
    assert uploads[1:] and all(
        os.fspath(u) == os.fspath(tmp_path / "run") for u in uploads[1:]
    )
    assert LogCategory.TRAIN_METRICS in logged and LogCategory.TEST_METRICS in logged
    assert (tmp_path / "model.zip").stat().st_size > 0
