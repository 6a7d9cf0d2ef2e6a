"""A logger that sends records to Weights & Biases (``wandb``, the optional extra
``wandb``)."""

import os
from typing import Any, Literal

from mlip_eqx.training.trackers.base import AbstractTrackerLogger, import_extra


class WandbLogger(AbstractTrackerLogger):
    """Logs every metric as ``<set>/<metric>`` (``train/loss``,
    ``validation/mae_f``) against the x-axis ``epoch``, in the library's units
    (eV, eV/Å, eV/Å³), to a new W&B run.

    Each record is one history row ``{"epoch": n, "train/loss": ..., ...}``
    (wandb's own ``_step`` counts rows). W&B history is append-only: a run resumed
    from the checkpoint of epoch ``n`` records ``resumed_from_epoch = n`` in the
    run's summary, and the repeated epochs appear again on the ``epoch`` axis.
    An offline run is uploaded later with ``wandb sync <run directory>``.
    """

    def __init__(
        self,
        project: str = "mlip_eqx",
        run_name: str | None = None,
        config: dict[str, Any] | None = None,
        mode: Literal["online", "offline", "disabled"] | None = None,
        directory: str | os.PathLike | None = None,
    ) -> None:
        """Starts the run (``wandb.init``; settings left as None are wandb's own,
        including its environment variables such as WANDB_MODE and WANDB_DIR).

        Args:
            project: The W&B project.
            run_name: The run's display name (None: one wandb makes up).
            config: Settings of the run, stored as the run's config.
            mode: "offline" writes the run locally only; "online" needs a login
                (``wandb login``); None: WANDB_MODE, else online.
            directory: Where wandb writes its ``wandb/`` folder of runs
                (created if missing); None: WANDB_DIR, else the working directory.

        Raises:
            ImportError: If wandb is not installed.
        """
        wandb = import_extra("wandb", "wandb")
        if directory is not None:
            os.makedirs(directory, exist_ok=True)
        self.run = wandb.init(
            project=project,
            name=run_name,
            config=config,
            mode=mode,
            dir=directory,
            reinit="create_new",
        )
        self.run.define_metric("epoch")
        self.run.define_metric("*", step_metric="epoch")

    def _log(self, scalars: dict[str, float], epoch_number: int) -> None:
        self.run.log(scalars | {"epoch": epoch_number})

    def _restored(self, epoch_number: int) -> None:
        self.run.summary["resumed_from_epoch"] = epoch_number

    def _finish(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)
