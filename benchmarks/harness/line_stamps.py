"""Wall-clock times of the lines a running program appends to its log files.

A training run writes one line per evaluation (mlip_eqx's ``metrics.jsonl``,
mace-torch's ``results/*train.txt``) but neither writes the time of day; a
thread polls the files while the run goes on in the same process and stamps
each complete new line with the seconds since the watch began, so that every
library's time-to-accuracy is measured the same way. Needs only the standard
library (importable by a peer's interpreter).
"""

import threading
import time
from pathlib import Path


class LineStamps:
    """Lines appended to the files ``folder.glob(pattern)`` while the ``with``
    block runs, as ``(seconds since the block began, line)``, polled every
    ``interval_s`` (so a stamp is late by at most that)."""

    def __init__(self, folder: Path, pattern: str, interval_s: float = 0.2):
        self.folder, self.pattern, self.interval_s = Path(folder), pattern, interval_s
        self.lines: list[tuple[float, str]] = []
        self._offsets: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self.start = 0.0

    def __enter__(self) -> "LineStamps":
        self.start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()  # lines written after the last poll

    def seconds(self) -> float:
        """Seconds since the block began."""
        return time.perf_counter() - self.start

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._poll()

    def _poll(self) -> None:
        now = time.perf_counter() - self.start
        for path in sorted(self.folder.glob(self.pattern)):
            try:
                data = path.read_bytes()
            except OSError:  # replaced or removed meanwhile
                continue
            offset = self._offsets.get(path, 0)
            if len(data) < offset:  # the file was truncated (a run starting over)
                offset = 0
            end = data.rfind(b"\n") + 1
            if end > offset:
                text = data[offset:end].decode(errors="replace")
                self.lines += [(now, line) for line in text.splitlines() if line]
                self._offsets[path] = end
