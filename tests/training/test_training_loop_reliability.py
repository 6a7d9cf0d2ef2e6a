"""The loop ends with a usable model and checkpoints, whatever validation does."""

import dataclasses
import logging
import textwrap

import numpy as np
import pytest

from mlip_eqx.data.graph_dataset import GraphDataset
from mlip_eqx.models.loss import MSELoss
from mlip_eqx.models.loss.reductions import Mean
from mlip_eqx.training import (
    OptimizerConfig,
    TrainingIOHandler,
    TrainingLoop,
    get_default_mlip_optimizer,
    make_eval_step,
    training_mesh,
)
from mlip_eqx.training.training_io_handler import LogCategory
from tests.helpers.subprocesses import run_script
from tests.training.test_training_loop import (
    build_splits_and_info,
    flat,
    make_loop,
    pair_force_field,
)


@pytest.fixture(scope="module")
def splits_and_info():
    return build_splits_and_info()


def with_nan_energy_label(dataset: GraphDataset) -> GraphDataset:
    """The dataset with the first structure's energy label replaced by NaN."""
    graphs = list(dataset.graphs)
    graphs[0] = dataclasses.replace(
        graphs[0], energy=np.full_like(graphs[0].energy, np.nan)
    )
    return GraphDataset(
        graphs,
        dataset.batch_size,
        dataset.max_n_node,
        dataset.max_n_edge,
        should_shuffle=False,
    )


def test_validation_that_never_improves_ends_with_the_untrained_model(
    splits_and_info, tmp_path, caplog
):
    (train, validation, test), info = splits_and_info
    handler = TrainingIOHandler(
        TrainingIOHandler.Config(local_model_output_dir=tmp_path)
    )
    loop = make_loop((train, with_nan_energy_label(validation), test), info, 2, handler)
    with caplog.at_level(logging.WARNING, logger="mlip_eqx"):
        loop.run()
    assert "validation loss was not finite" in caplog.text
    # The last epoch is checkpointed (to resume from); the best model is the
    # untrained one, and it is usable after training donated the state's buffers.
    assert handler.saved_epochs() == [2]
    np.testing.assert_array_equal(
        flat(loop.best_model.params), flat(pair_force_field(info).params)
    )
    assert np.isfinite(loop.test(test)["mae_f"])


def scaled_eval_step(force_field, factors):
    """The eval step with the loss of epoch e multiplied by ``factors[e]``."""
    step = make_eval_step(force_field, MSELoss(), training_mesh(False))

    def eval_step(params, batches, epoch):
        metrics = step(params, batches, epoch)
        loss = metrics["loss"]
        return metrics | {"loss": Mean(loss.total * factors[epoch], loss.count)}

    return eval_step


def test_resume_after_a_worse_last_epoch_restores_the_best_model(
    splits_and_info, tmp_path
):
    splits, info = splits_and_info
    force_field = pair_force_field(info)
    # Epoch 1 is the best; epochs 2 and 3 are worse.
    factors = {0: 1e3, 1: 1.0, 2: 1e2, 3: 1e2, 4: 1e2}

    def loop(epochs, restore):
        handler = TrainingIOHandler(
            TrainingIOHandler.Config(
                local_model_output_dir=tmp_path,
                max_checkpoints_to_keep=1,
                restore_checkpoint_if_exists=restore,
                restore_optimizer_state=restore,
            )
        )
        records = []
        handler.attach_logger(lambda c, m, e: records.append((c, dict(m))))
        training = TrainingLoop(
            splits[0],
            splits[1],
            force_field,
            MSELoss(),
            get_default_mlip_optimizer(OptimizerConfig(warmup_steps=0)),
            TrainingLoop.Config(num_epochs=epochs),
            io_handler=handler,
            eval_step=scaled_eval_step(force_field, factors),
        )
        training.run()
        return training, handler, records

    first, handler, _ = loop(3, restore=False)
    # The best checkpoint is kept beyond max_checkpoints_to_keep=1.
    assert handler.saved_epochs() == [1, 3]
    resumed, _, records = loop(4, restore=True)
    np.testing.assert_array_equal(
        flat(resumed.best_model.params), flat(first.best_model.params)
    )
    best = [m for c, m in records if c == LogCategory.BEST_MODEL][-1]
    assert best["best_epoch"] == 1


FAILING_SAVE = textwrap.dedent(
    """
    import shutil, sys
    from pathlib import Path
    from mlip_eqx.training import TrainingIOHandler
    from mlip_eqx.training.training_io_handler import LogCategory
    from tests.training.test_training_loop import build_splits_and_info, make_loop

    output = Path(sys.argv[1])
    splits, info = build_splits_and_info()
    handler = TrainingIOHandler(
        TrainingIOHandler.Config(local_model_output_dir=output)
    )

    def break_the_checkpoint_directory(category, to_log, epoch):
        if category == LogCategory.TRAIN_METRICS and epoch == 2:
            shutil.rmtree(output / "model")
            (output / "model").write_text("no longer a directory")

    handler.attach_logger(break_the_checkpoint_directory)
    make_loop(splits, info, 2, handler).run()
    """
)


def test_a_failed_save_ends_the_run_at_once_with_a_clear_error(tmp_path):
    with pytest.raises(AssertionError) as failure:
        run_script(FAILING_SAVE, str(tmp_path), timeout=120)
    message = str(failure.value)
    assert "CheckpointSaveError" in message
    assert f"{tmp_path}/model" in message
