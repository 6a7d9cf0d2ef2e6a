"""Training-step speed of a network on the demo data, on 1 and on 2 CPU devices.

Usage:
    python -m benchmarks.train_step [--steps 30] [--repeats 5]
        [--model mace|visnet|nequip] [--output benchmarks/results/train_step.json]

Model: MACE with 32 channels, l_max 2, correlation 3, 2 layers (or ``--model``,
the configs of ``train_vs_peers``: see ``common.demo_training_setup``), cutoff 5 Å;
batch size 8 (per device), float32, MSE loss, default MLIP optimizer. Each device
count runs in its own process (``XLA_FLAGS=--xla_force_host_platform_device_count``
must be set before jax starts). Reports the compile time (first step) and, over
``--repeats`` timed runs of ``--steps`` steps each, the median of steps/s,
structures/s and atoms/s. On 2 devices one step processes 2 batches.
"""

import statistics
import time

from benchmarks.common import demo_training_setup
from benchmarks.harness import (
    argument_parser,
    print_columns,
    run_in_child,
    write_record,
)


def measure(num_devices: int, steps: int, repeats: int, model: str) -> dict:
    """Runs in a process whose XLA_FLAGS give ``num_devices`` CPU devices."""
    import jax

    import mlip_eqx  # noqa: F401 (before jax's first computation: see its __init__)

    assert len(jax.devices()) == num_devices, jax.devices()
    train_step, state, batches, force_field = demo_training_setup(num_devices, model)
    structures = [int(b.graph_mask.sum()) for b in batches]
    atoms = [int(b.node_mask.sum()) for b in batches]

    start = time.perf_counter()
    state, metrics = train_step(state, batches[0], 0)
    jax.block_until_ready(state)
    compile_seconds = time.perf_counter() - start

    rates = []
    for repeat in range(repeats):
        chosen = [(i + repeat * steps) % len(batches) for i in range(steps)]
        start = time.perf_counter()
        for index in chosen:
            state, metrics = train_step(state, batches[index], 0)
        jax.block_until_ready(state)
        seconds = time.perf_counter() - start
        rates.append(
            {
                "steps_per_s": steps / seconds,
                "structures_per_s": sum(structures[i] for i in chosen) / seconds,
                "atoms_per_s": sum(atoms[i] for i in chosen) / seconds,
            }
        )
    return {
        "num_devices": num_devices,
        "compile_and_first_step_s": compile_seconds,
        "final_loss": metrics["loss"].result(),
        **{
            key: statistics.median(rate[key] for rate in rates)
            for key in ("steps_per_s", "structures_per_s", "atoms_per_s")
        },
        "num_parameters": sum(x.size for x in jax.tree.leaves(force_field.params)),
    }


def main() -> None:
    parser = argument_parser(__doc__, "train_step")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", choices=("mace", "visnet", "nequip"), default="mace")
    args = parser.parse_args()
    rows = [
        run_in_child(
            measure, devices, args.steps, args.repeats, args.model,
            environment={
                "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"
            },
        ).value
        for devices in args.devices
    ]  # fmt: skip
    print_columns(rows, "num_devices", label="metric / devices")
    write_record(
        args.output,
        {
            "model": args.model,
            "steps_per_repeat": args.steps,
            "repeats": args.repeats,
            "statistic": "median",
            "results": rows,
        },
    )


if __name__ == "__main__":
    main()
