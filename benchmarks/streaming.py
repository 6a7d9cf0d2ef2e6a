"""Memory and speed of training batches read lazily from graph shards, against
the same graphs held in memory.

Usage:
    python -m benchmarks.streaming [--gigabytes 1.0] [--work-dir /tmp/streaming]
        [--output benchmarks/results/streaming.json]

Builds the graphs of 1,000 demo cells (32 atoms, cutoff 5 Å) once and writes
them, repeated until the shards hold ``--gigabytes`` of data, with
``write_graph_shards`` (10,000 structures per shard). Then, each in a fresh
process: (a) streaming: ``ShardedGraphs`` batched by ``GraphDataset`` (batch
size 8, training shuffle), one epoch of batches made; (b) in memory: every graph
read into a list first, then the same epoch. Reported per mode: the peak
resident memory of the process (VmHWM) and the time and rate of the epoch's
batches; the process's resident memory just after importing mlip_eqx is the
baseline. Prints a table and writes JSON.
"""

import json
import time
from pathlib import Path

from benchmarks.harness import (
    argument_parser,
    peak_rss_mib,
    print_rows,
    run_in_child,
    write_record,
)

NUM_UNIQUE = 1000
CUTOFF = 5.0
BATCH_SIZE = 8


def write_shards(directory: Path, gigabytes: float) -> dict:
    """Shards of the demo graphs, repeated up to ``gigabytes`` of arrays."""
    from mlip_eqx.data.demo import generate_demo_structures
    from mlip_eqx.data.graph_creation import graph_from_chemical_system, species_table
    from mlip_eqx.data.graph_shards import write_graph_shards
    from mlip_eqx.data.readers.atoms_conversion import atoms_to_chemical_system

    atoms_list = generate_demo_structures(NUM_UNIQUE, seed=5)
    table = species_table(sorted({int(z) for a in atoms_list for z in a.numbers}))
    graphs = [
        graph_from_chemical_system(
            atoms_to_chemical_system(atoms, f"demo {i}"), CUTOFF, table
        )
        for i, atoms in enumerate(atoms_list)
    ]
    per_graph = sum(
        sum(
            leaf.nbytes
            for leaf in (
                g.positions,
                g.forces,
                g.senders,
                g.receivers,
                g.shifts,
                g.species,
            )
        )  # fmt: skip
        for g in graphs
    ) / len(graphs)
    count = int(gigabytes * 1e9 / per_graph)
    repeated = (graphs[i % NUM_UNIQUE] for i in range(count))
    sources = (f"demo {i % NUM_UNIQUE}, copy {i // NUM_UNIQUE}" for i in range(count))
    start = time.perf_counter()
    write_graph_shards(repeated, sources, directory, shard_size=10_000)
    on_disk = sum(path.stat().st_size for path in directory.glob("shard_*.h5"))
    return {
        "structures": count,
        "array_bytes": int(per_graph * count),
        "bytes_on_disk": on_disk,
        "write_s": time.perf_counter() - start,
    }


def measure(mode: str, directory: str) -> dict:
    """In this process: one epoch of batches, streamed or from memory."""
    from mlip_eqx.data.graph_dataset import GraphDataset
    from mlip_eqx.data.graph_shards import ShardedGraphs

    baseline_mib = peak_rss_mib()
    graphs = ShardedGraphs(Path(directory))
    start = time.perf_counter()
    if mode == "memory":
        graphs = list(graphs)
    load_s = time.perf_counter() - start
    dataset = GraphDataset(graphs, batch_size=BATCH_SIZE, num_batch_prefetch=1)
    start = time.perf_counter()
    num_batches = sum(1 for _ in dataset.iter_batches(0))
    epoch_s = time.perf_counter() - start
    return {
        "mode": mode,
        "baseline_rss_mib": baseline_mib,
        "load_s": load_s,
        "epoch_s": epoch_s,
        "batches": num_batches,
        "batches_per_s": num_batches / epoch_s,
    }


def main() -> None:
    parser = argument_parser(__doc__, "streaming", work_dir="/tmp/streaming")
    parser.add_argument("--gigabytes", type=float, default=1.0)
    args = parser.parse_args()
    shards = args.work_dir / "shards"
    if any(shards.glob("shard_*.h5")):
        data = json.loads((args.work_dir / "data.json").read_text())
    else:
        data = write_shards(shards, args.gigabytes)
        (args.work_dir / "data.json").write_text(json.dumps(data))
    runs = []
    for mode in ("stream", "memory"):
        child = run_in_child(measure, mode, shards)
        runs.append({**child.value, "peak_rss_mib": child.peak_rss_mib})
    print(
        f"{data['structures']:,} structures, {data['array_bytes'] / 1e9:.2f} GB of "
        f"arrays, {data['bytes_on_disk'] / 1e9:.2f} GB on disk"
    )
    print_rows(
        runs,
        [("mode", "mode", 0), ("baseline MiB", "baseline_rss_mib", 0),
         ("peak MiB", "peak_rss_mib", 0), ("batches/s", "batches_per_s", 1)],
    )  # fmt: skip
    write_record(args.output, {"data": data, "runs": runs, "batch_size": BATCH_SIZE})


if __name__ == "__main__":
    main()
