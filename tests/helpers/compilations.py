"""Counting XLA compilations in tests (with ``jax.log_compiles()`` and caplog)."""

import contextlib
import logging
from collections.abc import Iterator

import jax
import pytest


def compilations(records: list[logging.LogRecord]) -> int:
    """Number of "Compiling ..." messages among the log records."""
    return sum(record.getMessage().startswith("Compiling ") for record in records)


@contextlib.contextmanager
def logging_compilations(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Captures jax's compilation messages in ``caplog.records``."""
    with caplog.at_level(logging.WARNING, logger="jax"), jax.log_compiles():
        yield
