import pytest
from jaxtyping import TypeCheckError

from mlip_eqx.training.trackers import (
    MlflowLogger,
    TensorBoardLogger,
    WandbLogger,
    make_tracker_logger,
)
from mlip_eqx.training.training_io_handler import LogCategory


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


def test_tensorboard_under_the_output_dir(tmp_path):
    pytest.importorskip("tensorboardX")
    with make_tracker_logger("tensorboard", tmp_path, config={"a": 1}) as logger:
        assert isinstance(logger, TensorBoardLogger)
        logger(LogCategory.TRAIN_METRICS, {"loss": 1.0}, 1)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_wandb_offline_under_the_output_dir_unless_the_environment_says(
    tmp_path, monkeypatch
):
    wandb = pytest.importorskip("wandb")
    with make_tracker_logger("wandb", tmp_path / "a", run_name="r") as logger:
        assert isinstance(logger, WandbLogger)
        assert logger.run.offline
        assert logger.run.project == "mlip_eqx"
        assert logger.run.name == "r"
    assert list((tmp_path / "a" / "wandb").glob("offline-run-*"))

    monkeypatch.setenv("WANDB_MODE", "disabled")
    wandb.teardown()  # wandb reads its environment once per process
    try:
        make_tracker_logger("wandb", tmp_path / "b").close()
    finally:
        wandb.teardown()
    assert not (tmp_path / "b" / "wandb").exists()


def test_mlflow_store_under_the_output_dir_unless_the_environment_says(
    tmp_path, monkeypatch
):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    with make_tracker_logger("mlflow", tmp_path / "a", run_name="r") as logger:
        assert isinstance(logger, MlflowLogger)
    store = (tmp_path / "a" / "mlruns").resolve().as_uri()
    assert MlflowClient(store).get_run(logger.run_id).info.run_name == "r"

    elsewhere = (tmp_path / "elsewhere").resolve().as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    with make_tracker_logger("mlflow", tmp_path / "b") as logger:
        pass
    assert not (tmp_path / "b" / "mlruns").exists()
    assert MlflowClient(elsewhere).get_run(logger.run_id).info.status == "FINISHED"


def test_unknown_kind(tmp_path):
    # Where annotations are checked (as in these tests), the check refuses it first.
    with pytest.raises((ValueError, TypeCheckError), match="neptune"):
        make_tracker_logger("neptune", tmp_path)
