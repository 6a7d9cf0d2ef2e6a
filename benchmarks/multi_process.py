"""Training over two processes (jax.distributed, Gloo on CPU) against one process.

Usage:
    python -m benchmarks.multi_process [--epochs 4] [--repeats 2]
        [--work-dir /tmp/multi_process] [--output benchmarks/results/multi_process.json]

Runs ``mlip-eqx train`` on the demo data (300 structures, the main job's MACE:
32 channels, l_max 2, 2 layers) with ``--batches-per-step 2`` in three layouts,
which therefore train alike: (a) one process on one CPU device taking both batches
of every step, (b) one process on two CPU devices (``--all-devices``), (c) two
processes of one CPU device each on localhost. Reported per layout: the median
seconds per epoch (epochs 2 on, over the repeats), and the final validation force
MAE, which must agree. On a 2-core machine (c) has both processes share the two
cores, so it measures the cost of the process split and the Gloo transport, not
scaling. Prints a table and writes JSON.
"""

import json
import shutil
import socket
import statistics
from pathlib import Path

from benchmarks.harness import (
    alternate,
    argument_parser,
    print_rows,
    run_module,
    start_child,
    write_record,
)

FLAGS = ["--demo-structures", "300", "--batches-per-step", "2", "--no-plots"]
LAYOUTS = ("one_device", "two_devices", "two_processes")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def run_layout(layout: str, output_dir: Path, epochs: int) -> dict:
    """Trains in one layout (``mlip-eqx train`` in child processes); returns its
    epoch times and final metrics."""
    shutil.rmtree(output_dir, ignore_errors=True)
    flags = [*FLAGS, "--epochs", str(epochs), "--output-dir", str(output_dir)]
    environment = {}
    if layout == "two_processes":
        port = free_port()
        commands = [
            [*flags, "--coordinator", f"localhost:{port}", "--num-processes", "2",
             "--process-id", str(i)]
            for i in (0, 1)
        ]  # fmt: skip
    elif layout == "two_devices":
        environment["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        commands = [[*flags, "--all-devices"]]
    else:
        commands = [flags]
    children = [
        start_child(run_module, "mlip_eqx.cli", ["train", *command],
                    environment=environment)
        for command in commands
    ]  # fmt: skip
    try:
        wall_s = max(child.wait().wall_s for child in children)
    finally:  # a failed process leaves no other waiting for it
        for child in children:
            child.process.kill()
    records = [
        json.loads(line) for line in open(output_dir / "metrics.jsonl") if line.strip()
    ]
    train = [r for r in records if r["category"] == "TRAIN_METRICS"]
    evals = [r for r in records if r["category"] == "EVAL_METRICS"]
    return {
        "epoch_seconds": [r["runtime_in_seconds"] for r in train],
        "wall_seconds": wall_s,
        "final_validation_mae_f": evals[-1]["mae_f"],
        "final_train_loss": train[-1]["loss"],
    }


def main() -> None:
    parser = argument_parser(__doc__, "multi_process", work_dir="/tmp/multi_process")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    arguments = parser.parse_args()
    runs = alternate(
        range(arguments.repeats),
        {layout: (lambda _, layout=layout: run_layout(
            layout, arguments.work_dir / layout, arguments.epochs))
         for layout in LAYOUTS},
    )  # fmt: skip
    summary = {}
    for layout in LAYOUTS:
        times = [t for run in runs[layout] for t in run["epoch_seconds"][1:]] or [
            run["epoch_seconds"][0] for run in runs[layout]
        ]  # one epoch: the first (compilation included)
        summary[layout] = {
            "median_epoch_seconds": statistics.median(times),
            "final_validation_mae_f_meV": 1000
            * runs[layout][0]["final_validation_mae_f"],
            "final_train_loss": runs[layout][0]["final_train_loss"],
            "runs": runs[layout],
        }
    base = summary["one_device"]["median_epoch_seconds"]
    print_rows(
        [{"layout": layout, **entry,
          "ratio": entry["median_epoch_seconds"] / base}
         for layout, entry in summary.items()],
        [("layout", "layout", 0), ("s/epoch", "median_epoch_seconds", 2),
         ("vs 1 device", "ratio", 2), ("val MAE F", "final_validation_mae_f_meV", 3)],
    )  # fmt: skip
    write_record(
        arguments.output,
        {"epochs": arguments.epochs, "repeats": arguments.repeats, **summary},
    )


if __name__ == "__main__":
    main()
