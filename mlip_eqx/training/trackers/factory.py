"""One call that makes any tracker logger with defaults under a run's output
directory (what the CLI's ``--logger`` uses)."""

import os
from pathlib import Path
from typing import Any, Literal

from mlip_eqx.training.trackers.base import AbstractTrackerLogger
from mlip_eqx.training.trackers.mlflow_logger import MlflowLogger
from mlip_eqx.training.trackers.tensorboard_logger import TensorBoardLogger
from mlip_eqx.training.trackers.wandb_logger import WandbLogger

TrackerKind = Literal["tensorboard", "wandb", "mlflow"]


def make_tracker_logger(
    kind: TrackerKind,
    output_dir: str | os.PathLike,
    run_name: str | None = None,
    config: dict[str, Any] | None = None,
) -> AbstractTrackerLogger:
    """A tracker logger that keeps its records next to a run's checkpoints.

    Defaults (the user's environment variables win where the tracker reads them):

    - ``"tensorboard"``: event files under ``<output_dir>/tensorboard/``
      (``tensorboard --logdir <output_dir>/tensorboard``); ``config`` is written
      as a text summary, ``run_name`` is not used (one directory is one run).
    - ``"wandb"``: project WANDB_PROJECT, else ``"mlip_eqx"``; an offline run
      under ``<output_dir>/wandb/`` (``wandb sync`` uploads it), unless WANDB_MODE
      or WANDB_DIR is set, in which case wandb follows them.
    - ``"mlflow"``: experiment ``"mlip_eqx"`` in a local file store
      ``<output_dir>/mlruns`` unless MLFLOW_TRACKING_URI is set (see
      :class:`~mlip_eqx.training.trackers.MlflowLogger` on file stores).

    Attach the result with ``io_handler.attach_logger(logger)`` before training,
    and call ``logger.close()`` (``close(failed=True)`` after an error) once
    training and testing are done, or use it as a context manager.

    Args:
        kind: The tracker.
        output_dir: The run's output directory (e.g. the IO handler's
            ``local_model_output_dir``); created if missing.
        run_name: The run's name in W&B and MLflow (None: the tracker makes one up).
        config: Settings of the run (e.g. the CLI's settings), stored with it.

    Returns:
        The logger, a callable ``(category, to_log, epoch_number) -> None``.

    Raises:
        ImportError: If the tracker's extra (``pip install 'mlip_eqx[<kind>]'``)
            is not installed.
        ValueError: If ``kind`` is not one of the three.
    """
    output_dir = Path(output_dir)
    if kind == "tensorboard":
        return TensorBoardLogger(output_dir / "tensorboard", config=config)
    if kind == "wandb":
        return WandbLogger(
            project=os.environ.get("WANDB_PROJECT", "mlip_eqx"),
            run_name=run_name,
            config=config,
            mode=None if "WANDB_MODE" in os.environ else "offline",
            directory=None if "WANDB_DIR" in os.environ else output_dir,
        )
    if kind == "mlflow":
        tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or output_dir / "mlruns"
        return MlflowLogger(tracking_uri, run_name=run_name, config=config)
    raise ValueError(
        f"make_tracker_logger: unknown tracker kind {kind!r}; "
        "expected 'tensorboard', 'wandb' or 'mlflow'."
    )
