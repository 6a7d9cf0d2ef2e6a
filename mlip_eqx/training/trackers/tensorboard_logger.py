"""A logger that writes TensorBoard event files (``tensorboardX``, the optional
extra ``tensorboard``)."""

import json
import os
import time
from pathlib import Path
from typing import Any

from mlip_eqx.training.trackers.base import AbstractTrackerLogger, import_extra

# How long a record may wait in tensorboardX's queue before it is on disk.
_FLUSH_SECONDS = 10


class TensorBoardLogger(AbstractTrackerLogger):
    """Writes every metric as a TensorBoard scalar ``<set>/<metric>``
    (``train/loss``, ``validation/mae_f``) at step = epoch, in the library's units
    (eV, eV/Å, eV/Å³). tensorboardX writes on a background thread: a record is on
    disk within 10 s, and every record after ``close()``. View with
    ``tensorboard --logdir <log_dir>``.

    A run resumed from the checkpoint of epoch ``n`` in the same ``log_dir`` adds
    a new event file that starts with a purge marker at step ``n + 1``: TensorBoard
    then hides the earlier attempt's values of the epochs that are repeated.
    """

    def __init__(
        self, log_dir: str | os.PathLike, config: dict[str, Any] | None = None
    ) -> None:
        """Opens a new event file in ``log_dir`` (created if missing).

        Args:
            log_dir: The directory of the event files.
            config: Settings of the run, written once as a JSON text summary
                named ``config``.

        Raises:
            ImportError: If tensorboardX is not installed.
        """
        self._tensorboardx = import_extra("tensorboardX", "tensorboard")
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._writer = self._new_writer(purge_step=None)
        if config is not None:
            text = json.dumps(config, indent=2, sort_keys=True, default=str)
            # Indented by four spaces: TensorBoard renders text as Markdown.
            self._writer.add_text("config", "    " + text.replace("\n", "\n    "))

    def _log(self, scalars: dict[str, float], epoch_number: int) -> None:
        for tag, value in scalars.items():
            self._writer.add_scalar(tag, value, global_step=epoch_number)

    def _restored(self, epoch_number: int) -> None:
        # A new event file whose first event purges the steps after the epoch.
        self._writer.close()
        self._writer = self._new_writer(purge_step=epoch_number + 1)

    def _new_writer(self, purge_step: int | None):
        # tensorboardX names event files by the second and overwrites a file of
        # the same name; the nanoseconds keep each file new and in time order.
        return self._tensorboardx.SummaryWriter(
            logdir=str(self.log_dir),
            purge_step=purge_step,
            filename_suffix=f".{time.time_ns()}",
            flush_secs=_FLUSH_SECONDS,
        )

    def _finish(self, failed: bool) -> None:
        self._writer.close()
