"""Progress reporting: a rich bar on a terminal, plain log lines otherwise."""

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import Progress

logger = logging.getLogger("mlip_eqx")

T = TypeVar("T")


def track(
    items: Iterable[T], description: str, total: int | None = None
) -> Iterator[T]:
    """Yields ``items`` while showing progress.

    On a terminal this is a rich progress bar (on stderr); otherwise one log line per
    10 % of ``total`` (or only start and end if the total is unknown).

    Args:
        items: What to iterate over.
        description: What is being done, e.g. "Building train graphs".
        total: Number of items, if ``items`` has no ``len``.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if sys.stderr.isatty():
        with Progress(transient=True) as progress:
            task = progress.add_task(description, total=total)
            for item in items:
                yield item
                progress.advance(task)
        return
    logger.info("%s ...", description)
    step = max(1, (total or 0) // 10)
    count = 0
    for count, item in enumerate(items, start=1):
        yield item
        if total and count % step == 0 and count < total:
            logger.info("%s: %d/%d", description, count, total)
    logger.info("%s: done (%d items).", description, count)
