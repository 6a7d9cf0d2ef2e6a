"""resume: a run restored from its checkpoints continues as if uninterrupted."""

import numpy as np
import pytest

from mlip_eqx.training import Checkpointer, TrainingIOHandlerConfig, resume
from tests.training.test_fit import fit_pieces
from tests.training.test_training_loop import build_splits_and_info, flat


@pytest.fixture(scope="module")
def splits_and_info():
    return build_splits_and_info()


def test_resumed_run_equals_uninterrupted_run(splits_and_info, tmp_path):
    splits, info = splits_and_info
    pieces = fit_pieces(splits, info)

    def run(directory, epochs, restore):
        config = TrainingIOHandlerConfig(
            local_model_output_dir=directory,
            restore_checkpoint_if_exists=restore,
            restore_optimizer_state=restore,
        )
        checkpointer = Checkpointer(config)
        start = resume(pieces.fresh_state(), checkpointer, info)
        # Read before fit donates the start's state.
        started_at = (start.epoch, int(start.state.num_steps))
        return started_at, pieces.fit(start, epochs, checkpointer=checkpointer)

    _, uninterrupted = run(tmp_path / "a", 4, restore=False)
    _, first_part = run(tmp_path / "b", 2, restore=False)
    started_at, resumed = run(tmp_path / "b", 4, restore=True)

    assert started_at == (2, int(first_part.state.num_steps))
    for actual, expected in (
        (resumed.state.params, uninterrupted.state.params),
        (resumed.best_params, uninterrupted.best_params),
    ):
        np.testing.assert_allclose(flat(actual), flat(expected), rtol=1e-6, atol=1e-8)
    assert int(resumed.state.num_steps) == int(uninterrupted.state.num_steps)
    assert int(resumed.state.best_model.epoch) == int(
        uninterrupted.state.best_model.epoch
    )


def test_without_a_checkpoint_the_run_starts_fresh(splits_and_info, tmp_path):
    splits, info = splits_and_info
    fresh = fit_pieces(splits, info).fresh_state()
    config = TrainingIOHandlerConfig(
        local_model_output_dir=tmp_path, restore_checkpoint_if_exists=True
    )
    for checkpointer in (None, Checkpointer(config)):
        start = resume(fresh, checkpointer, info)
        assert start.epoch == 0 and start.state is fresh
        np.testing.assert_array_equal(flat(start.best_params), flat(fresh.params))
    assert (tmp_path / "model").is_dir()  # the directory was opened
