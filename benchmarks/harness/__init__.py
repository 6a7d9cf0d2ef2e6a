"""What the benchmarks share: a function run in a fresh Python child
(``child``), the peak memory (``memory``), timing (``timing``), and the
arguments, tables and JSON records (``report``).

Importable by any interpreter with numpy (the peers' too): nothing here imports
mlip_eqx or jax at module level.
"""

from benchmarks.harness.child import (
    ChildError,
    ChildResult,
    run_in_child,
    run_module,
    start_child,
)
from benchmarks.harness.memory import peak_rss_mib
from benchmarks.harness.report import (
    argument_parser,
    print_columns,
    print_rows,
    write_record,
)
from benchmarks.harness.timing import alternate, median_seconds

__all__ = [
    "ChildError",
    "ChildResult",
    "alternate",
    "argument_parser",
    "median_seconds",
    "peak_rss_mib",
    "print_columns",
    "print_rows",
    "run_in_child",
    "run_module",
    "start_child",
    "write_record",
]
