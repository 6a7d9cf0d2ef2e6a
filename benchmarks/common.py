"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

import json
import os
import platform
from pathlib import Path


def write_record(path: Path, record: dict) -> None:
    """Writes ``record`` as JSON to ``path``, with the machine it ran on added."""
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {"machine": platform.platform(), "cpu_count": os.cpu_count(), **record}
    path.write_text(json.dumps(full, indent=2))
    print(f"wrote {path}")
