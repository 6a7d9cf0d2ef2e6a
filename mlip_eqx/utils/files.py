"""Writing files so that readers never see half of one."""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, mode: Literal["w", "wb"] = "wb"
) -> Iterator[IO]:
    """Opens a temporary file next to ``path``; renames it to ``path`` on success.

    The file is flushed to disk before the rename, so an existing file at ``path``
    is replaced whole or not at all; if the block raises (KeyboardInterrupt too),
    the temporary file is removed and ``path`` is untouched. The parent directory
    must exist. The new file gets the permissions 0o644 (``tempfile`` would make
    it private).

    Args:
        path: The file to write.
        mode: "w" for text, "wb" for bytes.

    Yields:
        The open temporary file.
    """
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, mode) as file:
            os.fchmod(file.fileno(), 0o644)
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Deletes the temporary files that :func:`atomic_write` left in ``directory``
    when its process was killed (``.<name>.<random>.tmp``). Call it only while no
    other process writes there (e.g. holding the directory's lock).

    Returns:
        The deleted files.
    """
    stale = [
        path
        for path in Path(directory).glob(".*.tmp")
        if path.is_file() and path.name.count(".") >= 3
    ]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def writable_directory(path: str | os.PathLike) -> Path:
    """Creates the directory ``path`` (and its parents) if needed and checks
    that a file can be written in it, before any work whose results go there.

    Raises:
        PermissionError: The directory cannot be created or written to (below a
            file, without permission, on a read-only file system), naming it.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write_check."):
            pass
    except OSError as error:
        raise PermissionError(
            f"{path}: cannot write there ({error.strerror or error})."
        ) from error
    return path
