import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlip_eqx.training.trackers import WandbLogger
from tests.training.trackers.records import (
    CONFIG,
    RECORDS,
    REPEATED_EPOCH,
    expected_series,
    log_all,
)

pytest.importorskip("wandb")


@pytest.fixture(autouse=True)
def no_wandb_environment(monkeypatch):
    for name in ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")


def inspect_run(run_dir: Path, *options: str) -> str:
    """The run's transaction log as JSON, read by wandb's own inspector
    (``wandb leet inspect --json``)."""
    return subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", *options],
        input="",
        capture_output=True,
        text=True,
        check=True,
        cwd=run_dir,
    ).stdout


def run_summary(run_dir: Path) -> dict:
    """The run's state, name, project, config and summary."""
    return json.loads(inspect_run(run_dir, "--summary", str(run_dir)))


def history_series(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """``{"train/loss": [(epoch, value), ...]}`` from the history records (one
    JSON object per line)."""
    series = {}
    for line in inspect_run(run_dir, str(run_dir)).splitlines():
        record = json.loads(line)
        if record["type"] != "history":
            continue
        row = record["history"]["item"]
        for name, value in row.items():
            if "/" in name:
                series.setdefault(name, []).append((row["epoch"], value))
    return series


def test_offline_run_holds_history_config_and_state(tmp_path):
    with WandbLogger(
        project="tests",
        run_name="tiny",
        config=CONFIG,
        mode="offline",
        directory=tmp_path,
    ) as logger:
        log_all(logger, RECORDS + REPEATED_EPOCH)
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    assert history_series(run_dir) == expected_series(RECORDS + REPEATED_EPOCH)
    summary = run_summary(run_dir)
    assert summary["state"] == "finished"
    assert summary["exit_code"] == 0
    assert (summary["project"], summary["name"]) == ("tests", "tiny")
    assert summary["config"] == CONFIG
    assert summary["summary"]["resumed_from_epoch"] == 1
    assert summary["summary"]["validation/loss"] == 0.5


def test_failed_block_marks_the_run(tmp_path):
    with pytest.raises(KeyError):
        with WandbLogger(mode="offline", directory=tmp_path):
            raise KeyError("stop")
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    summary = run_summary(run_dir)
    assert summary["exit_code"] == 1
