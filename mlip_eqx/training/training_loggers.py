"""Loggers to attach to a TrainingIOHandler: a rich table, one log line per record,
and a JSON-lines file.

Each is a callable ``(category, to_log, epoch_number) -> None``; attach it with
``io_handler.attach_logger(...)``. Loggers for experiment trackers (TensorBoard,
Weights & Biases, MLflow) are in :mod:`mlip_eqx.training.trackers`.
"""

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import rich
from rich.table import Table

from mlip_eqx.training.metric_units import for_display
from mlip_eqx.training.training_io_handler import LogCategory
from mlip_eqx.utils.files import atomic_write

logger = logging.getLogger("mlip_eqx")

_TABLE_TITLES = {
    LogCategory.BEST_MODEL: ("Best model", "white"),
    LogCategory.TRAIN_METRICS: ("Training set metrics", "cyan"),
    LogCategory.EVAL_METRICS: ("Validation set metrics", "green"),
    LogCategory.TEST_METRICS: ("Test set metrics", "blue_violet"),
}

_LINE_LABELS = {
    LogCategory.BEST_MODEL: "best model",
    LogCategory.TRAIN_METRICS: "training",
    LogCategory.EVAL_METRICS: "validation",
    LogCategory.TEST_METRICS: "test",
}


def to_python_scalar(value: Any) -> Any:
    """A jax/numpy scalar (or size-1 array) as a Python bool, int or float;
    other values unchanged."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if hasattr(value, "dtype") and np.size(value) == 1:
        scalar = np.asarray(value).reshape(()).item()
        if isinstance(scalar, bool | int | float):
            return scalar
    return value


def format_value(value: Any) -> str:
    """A metric as text: integers in full, other numbers with 5 significant
    digits (e.g. ``0.012346``, ``1.2346e-05``, ``1234.6``)."""
    value = to_python_scalar(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return f"{value:.1f}"
    return f"{value:.5g}"


def _ordered(to_log: dict[str, Any]) -> dict[str, Any]:
    """The record with the loss first, error metrics in meV units with the unit
    in their name (see :mod:`mlip_eqx.training.metric_units`)."""
    if "loss" in to_log:
        to_log = {"loss": to_log["loss"]} | {
            k: v for k, v in to_log.items() if k != "loss"
        }
    return dict(for_display(name, to_python_scalar(v)) for name, v in to_log.items())


def log_metrics_to_table(
    category: LogCategory, to_log: dict[str, Any], epoch_number: int
) -> None:
    """Prints a record as a rich table ("<set> metrics at epoch <n>") to the
    console, errors in meV units (``mae_f (meV/Å)``);
    CLEANUP_AFTER_CKPT_RESTORATION and TRAINING_DECISION records are not
    printed (the training loop logs each decision as a sentence).

    Args:
        category: What the record holds.
        to_log: Metrics by name.
        epoch_number: The epoch of the record.
    """
    if category not in _TABLE_TITLES:
        return
    title, colour = _TABLE_TITLES[category]
    print_metrics_table(f"{title} at epoch {epoch_number}", to_log, colour)


def print_metrics_table(title: str, to_log: dict[str, Any], colour: str = "cyan"):
    """Prints metrics as a rich table titled ``title``, errors in meV units with
    the unit in their name, the loss (if any) first."""
    table = Table(
        title=title,
        show_header=True,
        header_style="bold magenta",
        min_width=len(title),
    )
    table.add_column("Metric", style=colour)
    table.add_column("Value", justify="right")
    for name, value in _ordered(to_log).items():
        table.add_row(name, format_value(value))
    rich.get_console().print(table)


def log_metrics_to_line(
    category: LogCategory, to_log: dict[str, Any], epoch_number: int
) -> None:
    """Logs a record as one line, ``Epoch <n> <set>: name = value | ...``,
    through ``logging.getLogger("mlip_eqx").info``, errors in meV units
    (``mae_f (meV/Å) = 23.1``). TRAINING_DECISION records are not logged
    again (the training loop logs each decision as a sentence).

    Args:
        category: What the record holds.
        to_log: Metrics by name.
        epoch_number: The epoch of the record.
    """
    if category == LogCategory.CLEANUP_AFTER_CKPT_RESTORATION:
        logger.info("Epoch %d: continuing from its checkpoint.", epoch_number)
        return
    if category == LogCategory.TRAINING_DECISION:
        return
    text = " | ".join(
        f"{name} = {format_value(value)}" for name, value in _ordered(to_log).items()
    )
    logger.info("Epoch %d %s: %s", epoch_number, _LINE_LABELS[category], text)


class JsonLinesLogger:
    """Appends every record as one JSON object per line to a file, in the
    library's units (eV, eV/Å, eV/Å³; the printed tables show meV).

    A line is ``{"category": "TRAIN_METRICS", "epoch": 3, "loss": 0.12, ...}``;
    jax/numpy scalars become numbers (NaN and infinities are written as ``NaN``,
    ``Infinity``, which Python's json module reads). Each record is written and
    flushed when logged, so the file survives a crash. A
    CLEANUP_AFTER_CKPT_RESTORATION record is not written; instead the file is
    rewritten (atomically) without the records of epochs after the restored one,
    and without a torn last line that a killed process may have left.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        """Args:
        path: The file; created with its directory if missing, appended to
            otherwise (e.g. by a resumed run).
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, "rb+") as file:
                file.seek(-1, os.SEEK_END)
                if file.read(1) != b"\n":
                    # A torn line of a killed process: keep new records apart.
                    file.write(b"\n")

    def __call__(
        self, category: LogCategory, to_log: dict[str, Any], epoch_number: int
    ) -> None:
        """Writes the record, or, for CLEANUP_AFTER_CKPT_RESTORATION, drops the
        records of epochs after ``epoch_number``.

        Raises:
            ValueError: If a metric is named "category" or "epoch".
        """
        if category == LogCategory.CLEANUP_AFTER_CKPT_RESTORATION:
            self._drop_records_after(epoch_number)
            return
        clashes = sorted({"category", "epoch"} & set(to_log))
        if clashes:
            raise ValueError(
                f"JsonLinesLogger: metric names {clashes} clash with the record keys."
            )
        record = {"category": category.name, "epoch": int(epoch_number)}
        record |= {name: _json_value(value) for name, value in to_log.items()}
        line = json.dumps(record) + "\n"
        with open(self.path, "a") as file:
            file.write(line)
            file.flush()

    def clear(self) -> None:
        """Empties the file (atomically), e.g. when a run starts from scratch in
        a directory where an earlier attempt died before its first checkpoint."""
        with atomic_write(self.path, "w"):
            pass

    def records(self) -> list[dict]:
        """The records in the file (a torn last line is skipped)."""
        if not self.path.exists():
            return []
        records = []
        with open(self.path) as file:
            for line in file:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    logger.warning("%s: skipping a damaged line.", self.path)
        return records

    def _drop_records_after(self, epoch_number: int) -> None:
        kept = [r for r in self.records() if r.get("epoch", 0) <= epoch_number]
        with atomic_write(self.path, "w") as file:
            file.writelines(json.dumps(record) + "\n" for record in kept)


def _json_value(value: Any) -> Any:
    value = to_python_scalar(value)
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        return np.asarray(value).tolist()
    return value
