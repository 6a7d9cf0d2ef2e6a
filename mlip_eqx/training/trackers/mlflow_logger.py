"""A logger that sends records to MLflow (``mlflow-skinny``, the optional extra
``mlflow``)."""

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlip_eqx.training.trackers.base import AbstractTrackerLogger, import_extra

# MLflow's limits (mlflow.utils.validation).
_MAX_PARAMS_PER_BATCH = 100
_MAX_PARAM_VALUE_LENGTH = 6000


class MlflowLogger(AbstractTrackerLogger):
    """Logs every metric as ``<set>/<metric>`` (``train/loss``,
    ``validation/mae_f``) at step = epoch, in the library's units (eV, eV/Å,
    eV/Å³), to a new MLflow run, through an explicit ``MlflowClient`` (no global
    active run).

    MLflow keeps every value: a run resumed from the checkpoint of epoch ``n``
    gets the tag ``mlip_eqx.resumed_from_epoch = n``, and the repeated epochs
    appear again at their steps.

    mlflow-skinny has no database backend (``sqlite:`` needs SQLAlchemy and
    Alembic, which the full ``mlflow`` package brings): without a server, a local
    file store (``file:`` URI or path) is used. MLflow 3 keeps that store in
    maintenance mode and refuses it unless MLFLOW_ALLOW_FILE_STORE is true, so for
    a file store this logger sets MLFLOW_ALLOW_FILE_STORE=true in the process's
    environment when it is unset. View the store with the full package:
    ``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri <uri>``, or move it
    to a database with ``mlflow migrate-filestore``.
    """

    def __init__(
        self,
        tracking_uri: str | os.PathLike | None = None,
        experiment_name: str = "mlip_eqx",
        run_name: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """Creates the experiment if missing and starts a run in it.

        Args:
            tracking_uri: The tracking store: a path or ``file:`` URI (a local
                store, created if missing), or a server's ``http(s):`` URI; None:
                MLflow's default (MLFLOW_TRACKING_URI).
            experiment_name: The experiment of the run.
            run_name: The run's name (None: one MLflow makes up).
            config: Settings of the run, logged as parameters; nested mappings
                become dotted names (``{"model": {"l_max": 2}}`` ->
                ``model.l_max = 2``), values their text (cut at MLflow's 6000
                characters).

        Raises:
            ImportError: If mlflow-skinny is not installed.
        """
        mlflow = import_extra("mlflow", "mlflow")
        if isinstance(tracking_uri, os.PathLike):
            tracking_uri = Path(tracking_uri).resolve().as_uri()
        if urlparse(tracking_uri or mlflow.get_tracking_uri()).scheme in ("", "file"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self._entities = mlflow.entities
        self.client = mlflow.tracking.MlflowClient(tracking_uri=tracking_uri)
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            experiment_id = self.client.create_experiment(experiment_name)
        else:
            experiment_id = experiment.experiment_id
        self.run_id = self.client.create_run(
            experiment_id, run_name=run_name
        ).info.run_id
        params = [
            self._entities.Param(name, str(value)[:_MAX_PARAM_VALUE_LENGTH])
            for name, value in _flattened(config or {})
        ]
        for batch in _batches(params, _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=batch)

    def _log(self, scalars: dict[str, float], epoch_number: int) -> None:
        timestamp_ms = int(time.time() * 1000)
        metrics = [
            self._entities.Metric(name, value, timestamp_ms, epoch_number)
            for name, value in scalars.items()
        ]
        self.client.log_batch(self.run_id, metrics=metrics)

    def _restored(self, epoch_number: int) -> None:
        self.client.set_tag(self.run_id, "mlip_eqx.resumed_from_epoch", epoch_number)

    def _finish(self, failed: bool) -> None:
        self.client.set_terminated(
            self.run_id, status="FAILED" if failed else "FINISHED"
        )


def _flattened(
    config: Mapping[str, Any], prefix: str = ""
) -> Iterator[tuple[str, Any]]:
    for name, value in config.items():
        if isinstance(value, Mapping):
            yield from _flattened(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
