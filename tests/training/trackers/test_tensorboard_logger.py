import json
import struct
from pathlib import Path

import pytest

from mlip_eqx.training.trackers import TensorBoardLogger
from mlip_eqx.training.training_io_handler import LogCategory, TrainingIOHandler
from tests.training.trackers.records import (
    CONFIG,
    RECORDS,
    REPEATED_EPOCH,
    expected_series,
    log_all,
)

tensorboardx = pytest.importorskip("tensorboardX")
from tensorboardX.proto import event_pb2  # noqa: E402
from tensorboardX.record_writer import masked_crc32c  # noqa: E402


def read_events(path: Path) -> list:
    """The events of a TFRecord file: per record, the length (8 bytes, little
    endian), its masked CRC-32C (4), the serialized Event and its CRC (4)."""
    data = path.read_bytes()
    events, offset = [], 0
    while offset < len(data):
        header = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[offset + 8 : offset + 12])
        assert header_crc == masked_crc32c(header)
        payload = data[offset + 12 : offset + 12 + length]
        (payload_crc,) = struct.unpack(
            "<I", data[offset + 12 + length : offset + 16 + length]
        )
        assert payload_crc == masked_crc32c(payload)
        events.append(event_pb2.Event.FromString(payload))
        offset += 16 + length
    return events


def visible_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """The scalars TensorBoard shows: event files in name order, and a
    SessionLog START at step s hides the earlier values of steps >= s."""
    series = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in read_events(path):
            if event.session_log.status == event_pb2.SessionLog.START:
                series = {
                    tag: [(step, v) for step, v in points if step < event.step]
                    for tag, points in series.items()
                }
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    series.setdefault(value.tag, []).append(
                        (event.step, value.simple_value)
                    )
    return {tag: points for tag, points in series.items() if points}


def text_summaries(log_dir: Path) -> dict[str, str]:
    return {
        value.tag: value.tensor.string_val[0].decode()
        for path in log_dir.glob("events.out.tfevents.*")
        for event in read_events(path)
        for value in event.summary.value
        if value.HasField("tensor")
    }


def test_scalars_per_category_at_epoch_steps_and_config_text(tmp_path):
    with TensorBoardLogger(tmp_path / "tb", config=CONFIG) as logger:
        log_all(logger, RECORDS)
    assert visible_scalars(tmp_path / "tb") == expected_series(RECORDS)
    (text,) = text_summaries(tmp_path / "tb").values()
    assert json.loads(text) == CONFIG


def test_restoration_hides_the_repeated_epochs(tmp_path):
    with TensorBoardLogger(tmp_path) as logger:
        log_all(logger, RECORDS)
        log_all(logger, REPEATED_EPOCH)
    kept = [record for record in RECORDS if record[2] <= 1]
    assert visible_scalars(tmp_path) == expected_series(kept + REPEATED_EPOCH)

    # A resumed run in a new process writes into the same directory.
    with TensorBoardLogger(tmp_path) as logger:
        logger(LogCategory.CLEANUP_AFTER_CKPT_RESTORATION, {}, 0)
        logger(LogCategory.TRAIN_METRICS, {"loss": 4.0}, 1)
    assert visible_scalars(tmp_path)["train/loss"] == [(1, 4.0)]
    assert visible_scalars(tmp_path)["validation/loss"] == [(0, 2.0)]


def test_close_is_final(tmp_path):
    logger = TensorBoardLogger(tmp_path)
    logger.close()
    logger.close()
    with pytest.raises(RuntimeError, match="after close"):
        logger(LogCategory.TRAIN_METRICS, {"loss": 1.0}, 1)


def test_attached_to_a_training_run(tmp_path):
    from tests.training.test_training_loop import build_splits_and_info, make_loop

    splits, info = build_splits_and_info()
    handler = TrainingIOHandler()
    with TensorBoardLogger(tmp_path) as logger:
        handler.attach_logger(logger)
        loop = make_loop(splits, info, 2, handler)
        loop.run()
        test_metrics = loop.test(splits[2])
    scalars = visible_scalars(tmp_path)
    assert [step for step, _ in scalars["train/loss"]] == [1, 2]
    assert [step for step, _ in scalars["validation/loss"]] == [0, 1, 2]
    assert [step for step, _ in scalars["best_model/best_loss"]] == [0, 1, 2]
    ((step, loss),) = scalars["test/loss"]
    assert step == 2
    assert loss == pytest.approx(float(test_metrics["loss"]), rel=1e-6)
    assert scalars["test/mae_f"][0][1] == pytest.approx(float(test_metrics["mae_f"]))
