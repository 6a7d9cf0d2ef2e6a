"""Speed of the data pipeline: reading, graph building, batching; padding efficiency.

Usage:
    python -m benchmarks.data_pipeline [--repeats 5] [--num-large 1000]
        [--output benchmarks/results/data_pipeline.json]

Data sets: the demo set (300 EMT cells of 32 atoms) and ``--num-large`` EMT cells of
108 atoms, both generated once and cached (generation is not timed). Prints a table
and writes JSON with the medians over ``--repeats`` runs. (Mixed sizes, with train
throughput: ``mixed_sizes``.)
"""

from benchmarks.harness import (
    argument_parser,
    median_seconds,
    print_columns,
    write_record,
)
from mlip_eqx.data import ExtxyzReader, GraphDatasetBuilder
from mlip_eqx.data.demo import get_demo_dataset
from mlip_eqx.data.graph_creation import graph_from_chemical_system, species_table


def measure(name: str, num_structures: int, repeat: int, batch_size: int, repeats: int):
    demo = get_demo_dataset(num_structures=num_structures, repeat=repeat)
    reader = ExtxyzReader(
        ExtxyzReader.Config(
            train_dataset_paths=demo.train_path,
            valid_dataset_paths=demo.validation_path,
            test_dataset_paths=demo.test_path,
            required_labels=("energy", "forces", "stress"),
        )
    )
    read_time, (train, validation, test) = median_seconds(reader.load, repeats)
    systems = train + validation + test
    atoms = sum(system.num_atoms for system in systems)

    table = species_table(sorted({int(z) for s in systems for z in s.atomic_numbers}))
    cutoff = 5.0
    build_time, graphs = median_seconds(
        lambda: [graph_from_chemical_system(s, cutoff, table) for s in systems],
        repeats,
    )
    edges = sum(int(graph.n_edge[0]) for graph in graphs)

    def prepare():
        builder = GraphDatasetBuilder(
            reader, GraphDatasetBuilder.Config(batch_size=batch_size)
        )
        builder.prepare_datasets()
        return builder

    prepare_time, builder = median_seconds(prepare, repeats)
    train_set = builder.get_splits()[0]
    results = {
        "dataset": name,
        "num_structures": len(systems),
        "atoms_per_structure": atoms / len(systems),
        "edges_per_structure": edges / len(systems),
        "read_structures_per_s": len(systems) / read_time,
        "graph_building_structures_per_s": len(systems) / build_time,
        "prepare_datasets_structures_per_s": len(systems) / prepare_time,
        "batch_size": batch_size,
        "num_batch_shapes": len(train_set.batch_shapes),
    }
    for prefetch in (0, 2):
        train_set.num_batch_prefetch = prefetch
        epoch_time, num_batches = median_seconds(
            lambda: sum(1 for _ in train_set.iter_batches(epoch=1)), repeats
        )
        results[f"iteration_batches_per_s_prefetch{prefetch}"] = (
            num_batches / epoch_time
        )
    efficiency = train_set.padding_efficiency(epoch=1)
    results["padding_efficiency_nodes"] = efficiency.nodes
    results["padding_efficiency_edges"] = efficiency.edges
    results["padding_efficiency_graphs"] = efficiency.graphs
    results["batches_per_epoch"] = efficiency.num_batches
    return results


def main() -> None:
    parser = argument_parser(__doc__, "data_pipeline")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-large", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    rows = [
        measure("demo (32 atoms)", 300, 2, args.batch_size, args.repeats),
        measure("EMT 108 atoms", args.num_large, 3, args.batch_size, args.repeats),
    ]
    print_columns(rows, "dataset", width=20)
    write_record(
        args.output, {"repeats": args.repeats, "statistic": "median", "results": rows}
    )


if __name__ == "__main__":
    main()
