import os

import pytest

from mlip_eqx.training.trackers import MlflowLogger
from tests.training.trackers.records import (
    CONFIG,
    RECORDS,
    REPEATED_EPOCH,
    expected_series,
    log_all,
)

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402


@pytest.fixture(autouse=True)
def file_store_allowed(monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def stored_series(client, run_id: str) -> dict[str, list[tuple[int, float]]]:
    run = client.get_run(run_id)
    return {
        name: sorted(
            (metric.step, metric.value)
            for metric in client.get_metric_history(run_id, name)
        )
        for name in run.data.metrics
    }


def test_local_store_holds_metrics_params_and_status(tmp_path):
    store = tmp_path / "mlruns"
    with MlflowLogger(store, "tests", run_name="tiny", config=CONFIG) as logger:
        log_all(logger, RECORDS + REPEATED_EPOCH)
    client = MlflowClient(store.resolve().as_uri())
    run = client.get_run(logger.run_id)
    expected = {
        name: sorted(points)
        for name, points in expected_series(RECORDS + REPEATED_EPOCH).items()
    }
    assert stored_series(client, logger.run_id) == expected
    assert run.data.params == {
        "model.l_max": "2",
        "model.irreps": "8x0e",
        "learning_rate": "0.001",
    }
    assert run.data.tags["mlip_eqx.resumed_from_epoch"] == "1"
    assert run.info.run_name == "tiny"
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "tests"


def test_second_run_joins_the_experiment_and_failure_is_recorded(tmp_path):
    store = tmp_path / "mlruns"
    first = MlflowLogger(store, "tests")
    first.close()
    with pytest.raises(KeyError):
        with MlflowLogger(store, "tests") as second:
            raise KeyError("stop")
    client = MlflowClient(store.resolve().as_uri())
    runs = {first.run_id, second.run_id}
    assert len(runs) == 2
    assert {client.get_run(r).info.experiment_id for r in runs} == {
        client.get_experiment_by_name("tests").experiment_id
    }
    assert client.get_run(second.run_id).info.status == "FAILED"


def test_file_store_is_allowed_when_the_environment_does_not_say(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    MlflowLogger(tmp_path / "mlruns").close()
    assert os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"
