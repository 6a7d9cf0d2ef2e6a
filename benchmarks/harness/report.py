"""The benchmarks' command lines, printed tables and JSON records."""

import argparse
import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"


def argument_parser(
    doc: str, name: str, *, work_dir: str | None = None
) -> argparse.ArgumentParser:
    """A parser described by the first line of ``doc``, with ``--output``
    (default ``benchmarks/results/<name>.json``) and, if ``work_dir`` is given,
    ``--work-dir`` (that default)."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS / f"{name}.json")
    if work_dir is not None:
        parser.add_argument("--work-dir", type=Path, default=Path(work_dir))
    return parser


def write_record(path: Path, record: dict) -> None:
    """Writes ``record`` as JSON to ``path``, with the machine it ran on added."""
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {"machine": platform.platform(), "cpu_count": os.cpu_count(), **record}
    path.write_text(json.dumps(full, indent=2))
    print(f"wrote {path}")


def _cell(value, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_columns(
    rows: Sequence[Mapping[str, object]],
    name_key: str,
    *,
    label: str = "metric",
    digits: int = 3,
    width: int = 16,
) -> None:
    """A table with one column per row of ``rows``, headed by its ``name_key``,
    and one line per metric (the other keys); an absent value shows as "-"."""
    names = [str(row[name_key]) for row in rows]
    keys = [key for key in dict.fromkeys(k for row in rows for k in row)
            if key != name_key]  # fmt: skip
    first = max([len(label), *map(len, keys)]) + 2
    print(f"{label:{first}s}" + "".join(f"{name:>{width}s}" for name in names))
    for key in keys:
        cells = [_cell(row.get(key), digits) for row in rows]
        print(f"{key:{first}s}" + "".join(f"{cell:>{width}s}" for cell in cells))


def print_rows(
    rows: Sequence[Mapping[str, object]], columns: Sequence[tuple[str, str, int]]
) -> None:
    """A table with one line per row: ``columns`` are (title, key, digits); a
    float shows with its digits, an absent value as "-"."""
    cells = [
        [_cell(row.get(key), digits) for _, key, digits in columns] for row in rows
    ]
    titles = [title for title, _, _ in columns]
    widths = [max(map(len, column)) for column in zip(titles, *cells)]
    for line in [titles, *cells]:
        print(" ".join(f"{cell:>{width}s}" for cell, width in zip(line, widths)))
