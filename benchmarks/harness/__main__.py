"""A child process's entry: ``python -m benchmarks.harness <folder>`` (see
:mod:`benchmarks.harness.child`)."""

import sys
from pathlib import Path

from benchmarks.harness.child import serve

serve(Path(sys.argv[1]))
