"""Uploads of a run's outputs through the user's remote-sync function."""

import logging
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from mlip_eqx.training.distributed import is_primary_process

logger = logging.getLogger("mlip_eqx")

__all__ = ["DataUploadFun", "Uploader"]

DataUploadFun = Callable[[Path], Future | None]


class Uploader:
    """Calls the user's upload function, one upload at a time (process 0 only).

    The function may work asynchronously by returning a
    ``concurrent.futures.Future``: the next upload, and :meth:`wait`, wait for it
    first (so uploads never overlap and finish in order).
    """

    def __init__(self, data_upload_fun: DataUploadFun | None) -> None:
        """Args:
        data_upload_fun: ``fn(path) -> Future | None``, e.g. a sync of ``path``
            (a file or a directory) to remote storage; None uploads nothing.
        """
        self._data_upload_fun = data_upload_fun
        self._future: Future | None = None

    def upload(self, path: Path) -> None:
        """Uploads ``path`` once the previous upload has finished.

        Args:
            path: The file or directory to upload (absolute).

        Raises:
            Exception: The error of the previous (asynchronous) upload.
        """
        if self._data_upload_fun is None or not is_primary_process():
            return
        self.wait()
        logger.info("Uploading %s.", path)
        result = self._data_upload_fun(path)
        self._future = result if isinstance(result, Future) else None

    def wait(self) -> None:
        """Blocks until the last upload has finished.

        Raises:
            Exception: The error of a failed asynchronous upload.
        """
        if self._future is not None:
            future, self._future = self._future, None
            future.result()
