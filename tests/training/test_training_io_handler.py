"""The guide's TrainingIOHandler: a facade over the checkpointer, the uploads and the
log fan-out, with no IO in its constructor."""

import pytest

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.training import checkpointer, log_fanout
from mlip_eqx.training.training_io_handler import (
    CheckpointSaveError,
    DirectoryLockedError,
    ExistingCheckpointsError,
    LogCategory,
    TrainingIOHandler,
    TrainingIOHandlerConfig,
)
from mlip_eqx.utils import directory_lock
from mlip_eqx.utils.config import ConfigError
from tests.helpers.models import DATASET_INFO
from tests.training.test_checkpointer import (
    assert_same_arrays,
    committed_epochs,
    shared_template,
    state_of_epoch,
)


def handler_for(directory, **settings) -> TrainingIOHandler:
    return TrainingIOHandler(
        TrainingIOHandler.Config(local_model_output_dir=directory, **settings)
    )


def test_config_is_reachable_and_checked(tmp_path):
    assert TrainingIOHandler.Config is TrainingIOHandlerConfig
    config = TrainingIOHandler.Config()
    assert config.local_model_output_dir is None
    assert config.max_checkpoints_to_keep == 5
    assert config.save_debiased_ema
    with pytest.raises(ConfigError, match="restore_checkpoint_if_exists.*clear_prev"):
        TrainingIOHandler.Config(
            local_model_output_dir=tmp_path,
            restore_checkpoint_if_exists=True,
            clear_previous_checkpoints=True,
        )
    with pytest.raises(ConfigError, match="local_model_output_dir"):
        TrainingIOHandler.Config(restore_checkpoint_if_exists=True)
    with pytest.raises(ConfigError, match="max_checkpoints_to_keep"):
        TrainingIOHandler.Config(max_checkpoints_to_keep=0)
    with pytest.raises(ConfigError, match="epoch_to_restore"):
        TrainingIOHandler.Config(epoch_to_restore=-1)


def test_errors_and_log_category_keep_their_import_paths():
    assert DirectoryLockedError is directory_lock.DirectoryLockedError
    assert ExistingCheckpointsError is checkpointer.ExistingCheckpointsError
    assert CheckpointSaveError is checkpointer.CheckpointSaveError
    assert LogCategory is log_fanout.LogCategory
    assert issubclass(ExistingCheckpointsError, ValueError)
    assert issubclass(CheckpointSaveError, OSError)


def test_log_calls_every_logger_in_order():
    handler = TrainingIOHandler()
    calls = []
    handler.attach_logger(lambda *record: calls.append(("first", *record)))
    handler.attach_logger(lambda *record: calls.append(("second", *record)))
    handler.log(LogCategory.EVAL_METRICS, {"loss": 1.5}, 4)
    assert calls == [
        ("first", LogCategory.EVAL_METRICS, {"loss": 1.5}, 4),
        ("second", LogCategory.EVAL_METRICS, {"loss": 1.5}, 4),
    ]


def test_without_output_directory_nothing_is_written(tmp_path, monkeypatch):
    template = shared_template()
    monkeypatch.chdir(tmp_path)
    handler = TrainingIOHandler(data_upload_fun=lambda path: pytest.fail("upload"))
    handler.open()
    handler.save_dataset_info(DATASET_INFO)
    handler.check_resumable(DATASET_INFO)
    handler.save_checkpoint(template, 1)
    handler.upload_completed_saves()
    handler.wait_until_finished()
    assert handler.checkpointer is None
    assert handler.checkpoint_dir is None and handler.output_dir is None
    assert handler.saved_epochs() == [] and handler.latest_epoch() is None
    assert handler.restore_training_state(template) is None
    with pytest.raises(ValueError, match="no output directory"):
        handler.restore_checkpoint(1, template)
    assert list(tmp_path.iterdir()) == []


def test_the_constructor_does_no_io(tmp_path):
    template = shared_template()
    earlier = handler_for(tmp_path / "earlier")
    earlier.save_checkpoint(template, 1)
    earlier.wait_until_finished()
    fresh = handler_for(tmp_path / "fresh", clear_previous_checkpoints=True)
    assert fresh.output_dir == (tmp_path / "fresh").resolve()
    assert not (tmp_path / "fresh").exists()
    # An earlier run's checkpoints are refused when the run starts, not before.
    refusing = handler_for(tmp_path / "earlier")
    assert committed_epochs(tmp_path / "earlier") == [1]
    with pytest.raises(ExistingCheckpointsError, match="earlier run"):
        refusing.open()
    with pytest.raises(ExistingCheckpointsError):
        refusing.save_dataset_info(DATASET_INFO)
    assert not (tmp_path / "earlier" / "dataset_info.json").exists()
    fresh.open()
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == [".lock", "model"]


def test_saves_and_restores_through_its_checkpointer(tmp_path):
    template = shared_template()
    handler = handler_for(tmp_path)
    handler.save_dataset_info(DATASET_INFO)
    for epoch in (1, 2):
        handler.save_checkpoint(state_of_epoch(template, epoch), epoch, 1.0 / epoch)
    handler.upload_completed_saves()
    handler.wait_until_finished()
    assert handler.saved_epochs() == [1, 2] == committed_epochs(tmp_path)
    assert handler.latest_epoch() == 2
    assert DatasetInfo.load_json(tmp_path / "dataset_info.json") == DATASET_INFO
    resuming = handler_for(tmp_path, restore_checkpoint_if_exists=True)
    resuming.check_resumable(DATASET_INFO)
    state, epoch = resuming.restore_training_state(template)
    assert epoch == 2
    assert_same_arrays(state.params, state_of_epoch(template, 2).params)
    assert_same_arrays(
        resuming.restore_checkpoint(1, template), state_of_epoch(template, 1)
    )
