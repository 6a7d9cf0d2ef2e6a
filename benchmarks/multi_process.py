"""Training over two processes (jax.distributed, Gloo on CPU) against one process.

Usage:
    python benchmarks/multi_process.py [--epochs 4] [--repeats 2]
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

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import write_record

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--demo-structures", "300", "--batches-per-step", "2", "--no-plots"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def run_layout(layout: str, output_dir: Path, epochs: int) -> dict:
    """Trains in one layout; returns its epoch times and final metrics."""
    shutil.rmtree(output_dir, ignore_errors=True)
    base = [sys.executable, "-m", "mlip_eqx.cli", "train", *FLAGS]
    base += ["--epochs", str(epochs), "--output-dir", str(output_dir)]
    env = dict(os.environ)
    if layout == "two_processes":
        port = free_port()
        commands = [
            base + ["--coordinator", f"localhost:{port}", "--num-processes", "2",
                    "--process-id", str(i)]
            for i in (0, 1)
        ]  # fmt: skip
    elif layout == "two_devices":
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        commands = [base + ["--all-devices"]]
    else:
        commands = [base]
    start = time.perf_counter()
    processes = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
        for command in commands
    ]  # fmt: skip
    errors = [process.communicate()[1] for process in processes]
    for process, error in zip(processes, errors, strict=True):
        if process.returncode:
            raise RuntimeError(f"{layout} failed:\n{error[-3000:]}")
    records = [
        json.loads(line) for line in open(output_dir / "metrics.jsonl") if line.strip()
    ]
    train = [r for r in records if r["category"] == "TRAIN_METRICS"]
    evals = [r for r in records if r["category"] == "EVAL_METRICS"]
    return {
        "epoch_seconds": [r["runtime_in_seconds"] for r in train],
        "wall_seconds": time.perf_counter() - start,
        "final_validation_mae_f": evals[-1]["mae_f"],
        "final_train_loss": train[-1]["loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/multi_process"))
    parser.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks/results/multi_process.json"
    )
    arguments = parser.parse_args()
    layouts = ("one_device", "two_devices", "two_processes")
    runs: dict[str, list[dict]] = {layout: [] for layout in layouts}
    for _ in range(arguments.repeats):
        for layout in layouts:  # interleaved, so that machine noise spreads evenly
            runs[layout].append(
                run_layout(layout, arguments.work_dir / layout, arguments.epochs)
            )
    summary = {}
    for layout in layouts:
        times = [t for run in runs[layout] for t in run["epoch_seconds"][1:]]
        summary[layout] = {
            "median_epoch_seconds": statistics.median(times),
            "final_validation_mae_f_meV": 1000
            * runs[layout][0]["final_validation_mae_f"],
            "final_train_loss": runs[layout][0]["final_train_loss"],
            "runs": runs[layout],
        }
    base = summary["one_device"]["median_epoch_seconds"]
    print(f"{'layout':<15} {'s/epoch':>8} {'vs 1 device':>12} {'val MAE F':>10}")
    for layout in layouts:
        entry = summary[layout]
        print(
            f"{layout:<15} {entry['median_epoch_seconds']:>8.2f} "
            f"{entry['median_epoch_seconds'] / base:>11.2f}x "
            f"{entry['final_validation_mae_f_meV']:>10.3f}"
        )
    write_record(
        arguments.output,
        {"epochs": arguments.epochs, "repeats": arguments.repeats, **summary},
    )


if __name__ == "__main__":
    main()
