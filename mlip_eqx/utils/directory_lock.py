"""One process at a time per output directory (an advisory lock file)."""

import fcntl
import os
from pathlib import Path

LOCK_FILENAME = ".lock"

# The lock files this process holds open, by directory: handlers of one process
# share a directory; the lock is released when the process ends.
_HELD: dict[Path, int] = {}


class DirectoryLockedError(RuntimeError):
    """Another process is using the directory."""


def lock_directory(directory: str | os.PathLike) -> None:
    """Takes the lock of ``directory`` (created if needed) for this process.

    The lock is an ``flock`` on ``<directory>/.lock``, which holds the owner's
    process id; the operating system releases it when the process ends, however
    it ends. Locking a directory this process already holds does nothing.

    Raises:
        DirectoryLockedError: If another process holds it (the message names it).
    """
    directory = Path(directory).resolve()
    if directory in _HELD:
        return
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILENAME
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
        os.close(descriptor)
        raise DirectoryLockedError(
            f"{directory} is in use by another run (process {owner or 'unknown'}); "
            "wait for it to finish or choose another output directory."
        ) from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    _HELD[directory] = descriptor
