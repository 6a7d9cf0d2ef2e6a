import json
import logging

import jax.numpy as jnp
import numpy as np
import pytest

from mlip_eqx.training.training_io_handler import LogCategory, TrainingIOHandler
from mlip_eqx.training.training_loggers import (
    JsonLinesLogger,
    format_value,
    log_metrics_to_line,
    log_metrics_to_table,
)

METRICS = {
    "mae_forces": jnp.asarray(0.0123456, jnp.float32),
    "loss": np.float64(1.5),
    "learning_rate": 1.25e-5,
    "skipped_updates": np.int32(2),
    "runtime_in_seconds": 1234.5678,
}


def test_format_value():
    assert format_value(3) == "3"
    assert format_value(np.int64(7)) == "7"
    assert format_value(2.0) == "2.0"
    assert format_value(0.0123456) == "0.012346"
    assert format_value(1.25e-5) == "1.25e-05"
    assert format_value(1234.5678) == "1234.6"
    assert format_value(1.5e9 + 0.5) == "1.5e+09"
    assert format_value(jnp.asarray(0.5)) == "0.5"
    assert format_value(float("nan")) == "nan"
    assert format_value("text") == "text"


def test_table_per_category(capsys):
    log_metrics_to_table(LogCategory.TRAIN_METRICS, METRICS, 3)
    output = capsys.readouterr().out
    assert "Training set metrics at epoch 3" in output
    lines = [line for line in output.splitlines() if "│" in line]
    assert "Metric" not in lines[0]  # the header is drawn with another line
    assert lines[0].split() == ["│", "loss", "│", "1.5", "│"]  # the loss first
    for name, text in [
        ("mae_forces", "0.012346"),
        ("learning_rate", "1.25e-05"),
        ("skipped_updates", "2"),
        ("runtime_in_seconds", "1234.6"),
    ]:
        (line,) = [line for line in lines if name in line]
        assert line.rstrip(" │").endswith(text), line
    titles = {
        LogCategory.EVAL_METRICS: "Validation set metrics at epoch 4",
        LogCategory.TEST_METRICS: "Test set metrics at epoch 4",
        LogCategory.BEST_MODEL: "Best model at epoch 4",
    }
    for category, title in titles.items():
        log_metrics_to_table(category, {"loss": 0.25}, 4)
        assert title in capsys.readouterr().out
    log_metrics_to_table(LogCategory.CLEANUP_AFTER_CKPT_RESTORATION, {}, 4)
    assert capsys.readouterr().out == ""


def test_line_per_call(caplog):
    with caplog.at_level(logging.INFO, logger="mlip_eqx"):
        log_metrics_to_line(LogCategory.TRAIN_METRICS, METRICS, 3)
        log_metrics_to_line(LogCategory.EVAL_METRICS, {"loss": 0.5}, 3)
        log_metrics_to_line(
            LogCategory.BEST_MODEL, {"best_loss": 0.5, "best_epoch": 3}, 3
        )
        log_metrics_to_line(LogCategory.TEST_METRICS, {"loss": 0.75}, 3)
        log_metrics_to_line(LogCategory.CLEANUP_AFTER_CKPT_RESTORATION, {}, 2)
    records = [r for r in caplog.records if r.name == "mlip_eqx"]
    assert all(r.levelno == logging.INFO for r in records)
    messages = [r.getMessage() for r in records]
    assert len(messages) == 5
    assert messages[0] == (
        "Epoch 3 training: loss = 1.5 | mae_forces = 0.012346 | "
        "learning_rate = 1.25e-05 | skipped_updates = 2 | runtime_in_seconds = 1234.6"
    )
    assert messages[1] == "Epoch 3 validation: loss = 0.5"
    assert messages[2] == "Epoch 3 best model: best_loss = 0.5 | best_epoch = 3"
    assert messages[3] == "Epoch 3 test: loss = 0.75"
    assert "2" in messages[4]
    assert all("\n" not in message for message in messages)


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_json_lines_records_and_cleanup(tmp_path):
    path = tmp_path / "logs" / "metrics.jsonl"
    json_logger = JsonLinesLogger(path)
    json_logger(LogCategory.TRAIN_METRICS, METRICS, 1)
    json_logger(LogCategory.EVAL_METRICS, {"loss": jnp.asarray(0.5)}, 1)
    json_logger(LogCategory.BEST_MODEL, {"best_loss": 0.5, "best_epoch": 1}, 1)
    json_logger(LogCategory.TRAIN_METRICS, {"loss": 0.4}, 2)
    json_logger(LogCategory.EVAL_METRICS, {"loss": float("nan")}, 2)
    json_logger(LogCategory.TRAIN_METRICS, {"loss": 0.3}, 3)
    records = read_lines(path)
    assert len(records) == 6
    assert records[0] == {
        "category": "TRAIN_METRICS",
        "epoch": 1,
        "mae_forces": pytest.approx(0.0123456, rel=1e-6),
        "loss": 1.5,
        "learning_rate": 1.25e-5,
        "skipped_updates": 2,
        "runtime_in_seconds": 1234.5678,
    }
    assert type(records[0]["mae_forces"]) is float
    assert type(records[0]["skipped_updates"]) is int
    assert records[1] == {"category": "EVAL_METRICS", "epoch": 1, "loss": 0.5}
    assert np.isnan(records[4]["loss"])
    assert json_logger.records()[2]["category"] == "BEST_MODEL"

    json_logger(LogCategory.CLEANUP_AFTER_CKPT_RESTORATION, {}, 1)
    assert [(r["category"], r["epoch"]) for r in read_lines(path)] == [
        ("TRAIN_METRICS", 1),
        ("EVAL_METRICS", 1),
        ("BEST_MODEL", 1),
    ]
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.jsonl"]
    json_logger(LogCategory.TRAIN_METRICS, {"loss": 0.45}, 2)
    assert read_lines(path)[-1] == {
        "category": "TRAIN_METRICS",
        "epoch": 2,
        "loss": 0.45,
    }


def test_json_lines_survives_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    JsonLinesLogger(path)(LogCategory.TRAIN_METRICS, {"loss": 1.0}, 1)
    with open(path, "a") as file:
        file.write('{"category": "TRAIN_METR')  # a process killed mid-write
    resumed = JsonLinesLogger(path)
    resumed(LogCategory.TRAIN_METRICS, {"loss": 0.9}, 2)
    assert [r["loss"] for r in resumed.records()] == [1.0, 0.9]
    resumed(LogCategory.CLEANUP_AFTER_CKPT_RESTORATION, {}, 5)
    assert [r["loss"] for r in read_lines(path)] == [1.0, 0.9]


def test_json_lines_rejects_clashing_names(tmp_path):
    json_logger = JsonLinesLogger(tmp_path / "metrics.jsonl")
    with pytest.raises(ValueError, match="epoch"):
        json_logger(LogCategory.TRAIN_METRICS, {"epoch": 3}, 3)


def test_loggers_attached_to_the_io_handler(tmp_path, capsys, caplog):
    handler = TrainingIOHandler()
    handler.attach_logger(log_metrics_to_table)
    handler.attach_logger(log_metrics_to_line)
    handler.attach_logger(JsonLinesLogger(tmp_path / "metrics.jsonl"))
    with caplog.at_level(logging.INFO, logger="mlip_eqx"):
        handler.log(LogCategory.EVAL_METRICS, {"loss": 0.5}, 7)
    assert "Validation set metrics at epoch 7" in capsys.readouterr().out
    assert "Epoch 7 validation: loss = 0.5" in caplog.text
    assert read_lines(tmp_path / "metrics.jsonl") == [
        {"category": "EVAL_METRICS", "epoch": 7, "loss": 0.5}
    ]


def test_people_read_errors_in_mev_and_files_keep_ev(tmp_path, caplog, capsys):
    record = {
        "loss": 0.5,
        "mae_f": 0.0231,
        "rmse_e_per_atom": 0.005,
        "q95_stress": 0.001,
        "mae_e": 1.17,
        "rel_mae_f": 0.1,
    }
    with caplog.at_level(logging.INFO, logger="mlip_eqx"):
        log_metrics_to_line(LogCategory.TEST_METRICS, record, 2)
    assert caplog.records[-1].getMessage() == (
        "Epoch 2 test: loss = 0.5 | mae_f (meV/Å) = 23.1 | rmse_e_per_atom "
        "(meV/atom) = 5.0 | q95_stress (meV/Å³) = 1.0 | mae_e (meV) = 1170.0 | "
        "rel_mae_f = 0.1"
    )
    log_metrics_to_table(LogCategory.TEST_METRICS, record, 2)
    table = capsys.readouterr().out
    assert "mae_f (meV/Å)" in table and "23.1" in table
    jsonl = JsonLinesLogger(tmp_path / "metrics.jsonl")
    jsonl(LogCategory.TEST_METRICS, record, 2)
    assert read_lines(tmp_path / "metrics.jsonl")[0]["mae_f"] == 0.0231
