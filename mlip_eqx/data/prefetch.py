"""Producing items of an iterator on a background thread, a few steps ahead."""

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def prefetch(items: Iterable[T], buffer_size: int) -> Iterator[T]:
    """Iterates ``items`` on a daemon thread, keeping up to ``buffer_size`` ready.

    Exceptions raised while producing an item are re-raised in the consumer, at
    the position where the item would have been. Stopping the iteration early
    (``break`` or garbage collection) stops the producer thread too.

    Args:
        items: The (possibly slow) iterable to read ahead, e.g. batch creation.
        buffer_size: Number of items to keep ready (>= 1).
    """
    if buffer_size < 1:
        raise ValueError(f"buffer_size must be >= 1, got {buffer_size}.")
    ready: queue.Queue = queue.Queue(maxsize=buffer_size)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        """Waits for room in the buffer; False if the consumer has stopped."""
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            put((_DONE, error))

    thread = threading.Thread(target=produce, daemon=True, name="mlip_eqx-prefetch")
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
