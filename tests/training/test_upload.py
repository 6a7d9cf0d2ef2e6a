"""Uploads through the user's remote-sync function: what it receives (as in mlip)
and when, and how its futures are awaited."""

import threading
import time
from concurrent.futures import Future

import pytest

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.training.training_io_handler import LogCategory, TrainingIOHandler
from mlip_eqx.training.upload import Uploader
from tests.helpers.models import DATASET_INFO
from tests.training.test_checkpointer import (
    committed_epochs,
    shared_template,
    state_of_epoch,
)


def test_upload_receives_the_dataset_info_file_as_in_mlip(tmp_path):
    # mlip calls data_upload_fun(<dir>/dataset_info.json) once the file is written.
    seen = []
    handler = TrainingIOHandler(
        TrainingIOHandler.Config(local_model_output_dir=tmp_path),
        lambda path: seen.append((path, DatasetInfo.load_json(path))),
    )
    handler.save_dataset_info(DATASET_INFO)
    assert seen == [(tmp_path.resolve() / "dataset_info.json", DATASET_INFO)]


def test_upload_is_called_with_the_directory_after_completed_saves(tmp_path):
    template = shared_template()
    calls = []

    def upload(path):
        calls.append((path, committed_epochs(path)))

    handler = TrainingIOHandler(
        TrainingIOHandler.Config(local_model_output_dir=tmp_path), upload
    )
    handler.save_checkpoint(state_of_epoch(template, 1), 1)
    handler.save_checkpoint(state_of_epoch(template, 2), 2)
    assert calls == [(tmp_path.resolve(), [1])]
    handler.wait_until_finished()
    assert calls == [(tmp_path.resolve(), [1]), (tmp_path.resolve(), [1, 2])]
    handler.wait_until_finished()
    assert len(calls) == 2
    handler.save_checkpoint(state_of_epoch(template, 3), 3)
    # Logging does no IO besides calling the loggers, even once the save is done.
    deadline = time.monotonic() + 20
    while 3 not in committed_epochs(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.01)
    handler.log(LogCategory.TRAIN_METRICS, {}, 3)
    assert len(calls) == 2
    while len(calls) < 3 and time.monotonic() < deadline:
        handler.upload_completed_saves()
        time.sleep(0.01)
    assert calls[2] == (tmp_path.resolve(), [1, 2, 3])


def test_asynchronous_upload_is_awaited(tmp_path):
    template = shared_template()
    finished = []

    def upload(path):
        future = Future()

        def work():
            time.sleep(0.2)
            finished.append(path)
            future.set_result(None)

        threading.Thread(target=work).start()
        return future

    handler = TrainingIOHandler(
        TrainingIOHandler.Config(local_model_output_dir=tmp_path), upload
    )
    handler.save_checkpoint(template, 1)
    handler.wait_until_finished()
    assert finished == [tmp_path.resolve()]


def test_uploads_run_one_at_a_time_and_report_their_errors(tmp_path):
    futures: list[Future] = []
    started = []

    def upload(path):
        # Each upload starts only once the previous one has finished.
        assert all(future.done() for future in futures)
        started.append(path)
        futures.append(Future())
        return futures[-1]

    uploader = Uploader(upload)
    uploader.upload(tmp_path / "a")
    threading.Timer(0.05, futures[0].set_result, (None,)).start()
    uploader.upload(tmp_path / "b")
    assert started == [tmp_path / "a", tmp_path / "b"]
    futures[1].set_exception(OSError("remote storage unreachable"))
    with pytest.raises(OSError, match="unreachable"):
        uploader.wait()
    uploader.wait()  # reported once
    Uploader(None).upload(tmp_path / "c")  # no function: nothing to do
    assert len(started) == 2
