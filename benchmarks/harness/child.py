"""A function run in a fresh Python child process, its result passed back as JSON.

The parent names the function (module and qualified name), writes its arguments to
a temporary folder and starts ``python -m benchmarks.harness <folder>`` (with this
interpreter or another, e.g. a peer's virtual environment, and extra environment
such as ``XLA_FLAGS``); the child imports the function, calls it, and writes its
result and its peak memory (:func:`~benchmarks.harness.memory.peak_rss_mib`) back.
Arguments and results are JSON values with numpy arrays anywhere inside (stored
next to the JSON in an ``.npz``). A child that fails raises :class:`ChildError`
with the end of its output, the traceback included.
"""

import dataclasses
import importlib
import json
import os
import runpy
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from benchmarks.harness.memory import peak_rss_mib

ROOT = Path(__file__).resolve().parents[2]
_ARRAY = "__npz__"
_TAIL_LINES = 40


class ChildError(RuntimeError):
    """A child process failed; the message holds the end of its output."""


@dataclasses.dataclass(frozen=True)
class ChildResult:
    """What a child returned.

    Attributes:
        value: The function's result.
        peak_rss_mib: The child's peak resident memory (VmHWM) in MiB.
        wall_s: Wall time of the child process in s, start-up included.
    """

    value: object
    peak_rss_mib: float
    wall_s: float


class Child:
    """A started child process (see :func:`start_child`)."""

    def __init__(self, name: str, folder: tempfile.TemporaryDirectory, log: Path,
                 process: subprocess.Popen, start: float):  # fmt: skip
        self.name, self.folder, self.log = name, folder, log
        self.process, self.start = process, start

    def wait(self) -> ChildResult:
        """Waits for the child; its result.

        Raises:
            ChildError: If the child exited with an error.
        """
        with self.folder as folder:
            code = self.process.wait()
            wall_s = time.perf_counter() - self.start
            if code != 0:
                tail = self.log.read_text(errors="replace").splitlines()[-_TAIL_LINES:]
                raise ChildError(
                    f"{self.name} failed in a child process (exit {code}); the end "
                    "of its output:\n" + "\n".join(tail)
                )
            reply = _read(Path(folder), "result")
        return ChildResult(reply["value"], reply["peak_rss_mib"], wall_s)


def start_child(
    function: Callable,
    *args,
    python: str | None = None,
    environment: Mapping[str, str] | None = None,
    log: Path | None = None,
    library_path: Path | None = None,
) -> Child:
    """Starts ``function(*args)`` in a fresh Python process.

    Args:
        function: A module-level function of a module that the child can import
            (its module is imported in the child, so a peer's module must not
            import mlip_eqx at module level).
        *args: Its arguments (JSON values, numpy arrays, paths).
        python: The interpreter (default: this one), e.g. a peer's.
        environment: Variables added to this process's environment, e.g.
            ``XLA_FLAGS`` or ``OMP_NUM_THREADS``. The repository root is put on
            ``PYTHONPATH``.
        log: The file that takes the child's output (default: a temporary one).
        library_path: A folder put first on the child's ``sys.path`` once the
            function is imported, so that the mlip_eqx found there is measured.

    Returns:
        The running child; ``wait()`` gives its :class:`ChildResult`.
    """
    module = function.__module__
    if module == "__main__":  # a script run with python -m benchmarks.<name>
        spec = sys.modules["__main__"].__spec__
        if spec is None:
            raise RuntimeError("run the benchmark as `python -m benchmarks.<name>` "
                               "so that its child processes can import it")  # fmt: skip
        module = spec.name
    name = f"{module}:{function.__qualname__}"
    folder = tempfile.TemporaryDirectory(prefix="benchmark_child_")
    request = {"function": name, "args": list(args), "library_path": library_path}
    _write(Path(folder.name), "request", request)
    log = log or Path(folder.name) / "output.log"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    env.update(environment or {})
    command = [python or sys.executable, "-m", "benchmarks.harness", folder.name]
    start = time.perf_counter()
    with open(log, "w") as stream:
        process = subprocess.Popen(
            command, stdout=stream, stderr=subprocess.STDOUT, env=env
        )
    return Child(name, folder, log, process, start)


def run_in_child(function: Callable, *args, **options) -> ChildResult:
    """:func:`start_child` with these arguments, waited for."""
    return start_child(function, *args, **options).wait()


def run_module(module: str, argv: list[str]) -> None:
    """``python -m <module> <argv>`` in this process: a command line run as a
    child's function, so that its peak memory is measured like any other.

    Raises:
        SystemExit: If the command exits with an error.
    """
    sys.argv = [module, *argv]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        if exit_.code not in (None, 0):
            raise


def serve(folder: Path) -> None:
    """The child's side: runs the request in ``folder``, writes the result."""
    request = _read(folder, "request")
    module_name, qualname = request["function"].split(":")
    function = importlib.import_module(module_name)
    for part in qualname.split("."):
        function = getattr(function, part)
    if request["library_path"] is not None:
        sys.path.insert(0, request["library_path"])
    value = function(*request["args"])
    _write(folder, "result", {"value": value, "peak_rss_mib": peak_rss_mib()})


def _write(folder: Path, stem: str, value) -> None:
    """``value`` as ``<stem>.json``, its arrays in ``<stem>.npz``."""
    arrays: dict[str, np.ndarray] = {}

    def encode(node):
        if isinstance(node, Mapping):
            return {str(key): encode(child) for key, child in node.items()}
        if isinstance(node, list | tuple):
            return [encode(child) for child in node]
        if isinstance(node, Path):
            return str(node)
        if hasattr(node, "__array__"):  # numpy, and jax arrays of the peers too
            array = np.asarray(node)
            if array.ndim == 0:
                return array.item()
            arrays[f"a{len(arrays)}"] = array
            return {_ARRAY: f"a{len(arrays) - 1}"}
        return node

    text = json.dumps(encode(value))
    np.savez(folder / f"{stem}.npz", **arrays)
    (folder / f"{stem}.json").write_text(text)


def _read(folder: Path, stem: str):
    """The value :func:`_write` wrote."""
    with np.load(folder / f"{stem}.npz") as npz:
        arrays = {name: npz[name] for name in npz.files}

    def decode(node):
        if isinstance(node, dict):
            if set(node) == {_ARRAY}:
                return arrays[node[_ARRAY]]
            return {key: decode(child) for key, child in node.items()}
        if isinstance(node, list):
            return [decode(child) for child in node]
        return node

    return decode(json.loads((folder / f"{stem}.json").read_text()))
