"""Speed of a ForceField call (energy + forces) for MACE: compile time, time per
batch and per atom.

Usage:
    python -m benchmarks.force_field [--repeats 5] [--num-batches 10]
        [--models small default] [--output benchmarks/results/force_field.json]

Models: MACE "small" (32 channels, l_max 2) and "default" (MACE.Config() defaults:
128 channels, l_max 3), correlation 3, 2 layers, cutoff 5 Å, float32, no stress.
Data: the first ``--num-batches`` training batches of the demo set (300 EMT cells
of 32 atoms, batch size 8, generated once and cached) and one periodic Cu/Ag/Au/Ni
fcc cell of 1008 atoms (6 x 6 x 7 conventional cells, rattled). Compile time is
lowering + XLA compilation of the jitted call (with the library's compiler
options, as ``make_predictor`` uses them); run times are medians over
``--repeats`` passes (every demo batch once per pass), after a warm-up call, with
inputs already on the device.
Prints a table and writes JSON.
"""

import time

import ase.build
import equinox as eqx
import jax
import numpy as np

from benchmarks.harness import argument_parser, median_seconds, write_record
from mlip_eqx.data import (
    ChemicalSystem,
    DatasetInfo,
    ExtxyzReader,
    GraphDatasetBuilder,
)
from mlip_eqx.data.demo import DEMO_ELEMENTS, get_demo_dataset
from mlip_eqx.data.graph_creation import graph_from_chemical_system, species_table
from mlip_eqx.graph import Graph, batch_graphs
from mlip_eqx.models import ForceField, Mace
from mlip_eqx.utils.compiler_options import compiler_options

CUTOFF = 5.0  # Å
MODELS = {
    "small": Mace.Config(num_channels=32, l_max=2),
    "default": Mace.Config(),
}


def demo_batches(num_batches: int) -> tuple[list[Graph], DatasetInfo]:
    """The first demo training batches (batch size 8) and their DatasetInfo."""
    demo = get_demo_dataset()
    reader = ExtxyzReader(ExtxyzReader.Config(train_dataset_paths=demo.train_path))
    builder = GraphDatasetBuilder(
        reader,
        GraphDatasetBuilder.Config(
            graph_cutoff_angstrom=CUTOFF,
            batch_size=8,
            validation_fraction=0.0,
            num_batch_prefetch=0,
        ),
    )
    builder.prepare_datasets()
    batches = list(builder.get_splits()[0].iter_batches(0))[:num_batches]
    return batches, builder.dataset_info


def large_cell(dataset_info: DatasetInfo) -> Graph:
    """One rattled fcc alloy cell of 1008 atoms, padded by one node and one graph."""
    rng = np.random.default_rng(0)
    atoms = ase.build.bulk("Cu", "fcc", a=3.75, cubic=True) * (6, 6, 7)
    atoms.numbers = rng.choice(
        [ase.data.atomic_numbers[symbol] for symbol in DEMO_ELEMENTS], len(atoms)
    )
    atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
    system = ChemicalSystem(
        atomic_numbers=atoms.numbers,
        positions=atoms.positions,
        cell=np.array(atoms.cell),
        pbc=atoms.pbc,
    )
    table = species_table(dataset_info.allowed_atomic_numbers)
    graph = graph_from_chemical_system(system, CUTOFF, table)
    return batch_graphs(
        [graph], n_node=graph.num_nodes + 1, n_edge=graph.num_edges, n_graph=2
    )


def measure(force_field: ForceField, batches: list[Graph], repeats: int) -> dict:
    """Compile time and median run times of the jitted energy + forces call."""
    params, static = force_field.partition()

    def energy_and_forces(params, batch):
        prediction = eqx.combine(params, static)(batch)
        return prediction.energy, prediction.forces

    # The compiler options of the library's own jitted calls: time what users run.
    energy_and_forces = jax.jit(
        energy_and_forces, compiler_options=compiler_options(jax.default_backend())
    )

    batches = [jax.device_put(batch) for batch in batches]
    start = time.perf_counter()
    compiled = energy_and_forces.lower(params, batches[0]).compile()
    compile_seconds = time.perf_counter() - start
    jax.block_until_ready(compiled(params, batches[0]))

    def one_pass():
        return jax.block_until_ready([compiled(params, batch) for batch in batches])

    seconds, _ = median_seconds(one_pass, repeats)
    atoms = sum(int(np.asarray(batch.node_mask).sum()) for batch in batches)
    structures = sum(int(np.asarray(batch.graph_mask).sum()) for batch in batches)
    return {
        "compile_s": compile_seconds,
        "num_batches": len(batches),
        "padded_nodes_per_batch": batches[0].num_nodes,
        "padded_edges_per_batch": batches[0].num_edges,
        "atoms_per_batch": atoms / len(batches),
        "structures_per_batch": structures / len(batches),
        "ms_per_batch": 1e3 * seconds / len(batches),
        "us_per_atom": 1e6 * seconds / atoms,
        "atoms_per_s": atoms / seconds,
    }


def main() -> None:
    parser = argument_parser(__doc__, "force_field")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-batches", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    args = parser.parse_args()
    demo, dataset_info = demo_batches(args.num_batches)
    data = {
        "demo (32 atoms, batch 8)": demo,
        "cell (1008 atoms)": [large_cell(dataset_info)],
    }
    rows = []
    for model in args.models:
        force_field = ForceField.from_mlip_network(Mace(MODELS[model], dataset_info))
        num_parameters = sum(leaf.size for leaf in jax.tree.leaves(force_field.params))
        for name, batches in data.items():
            row = {"model": model, "data": name, "num_parameters": num_parameters}
            row.update(measure(force_field, batches, args.repeats))
            rows.append(row)
            print(
                f"{model:8s} {name:26s} compile {row['compile_s']:7.2f} s   "
                f"{row['ms_per_batch']:9.2f} ms/batch   "
                f"{row['us_per_atom']:8.2f} µs/atom"
                f"   ({row['atoms_per_batch']:.0f} atoms, "
                f"{row['padded_edges_per_batch']} edges per batch)",
                flush=True,
            )
    record = {
        "device": str(jax.devices()[0].device_kind),
        "jax_version": jax.__version__,
        "dtype": "float32",
        "repeats": args.repeats,
        "statistic": "median",
        "results": rows,
    }
    write_record(args.output, record)


if __name__ == "__main__":
    main()
