"""Batching of a mixed-size data set: padding efficiency, shapes and train throughput.

Usage:
    python -m benchmarks.mixed_sizes [--rounds 3] [--baseline-path /tmp/before]
        [--output benchmarks/results/mixed_sizes.json]

The data set (generated once and cached): 300 non-periodic clusters of 5-30 atoms
and 300 periodic fcc cells of 32-256 atoms (vacancies give every size), Cu/Ag/Au/Ni,
labelled with ASE's EMT. It is batched with ``GraphDatasetBuilder`` (cutoff 5 Å,
batch size 8, all else default) and trained with the main job's MACE (32 channels,
l_max 2, correlation 3, 2 layers) on one device.

Each configuration runs in its own process, in alternating rounds: the bucketed
batching (the default), one shape (``max_batch_shapes=1``), and, with
``--baseline-path``, the code found at that path (e.g. a ``git worktree`` of an
older commit, which has its own batching). For each: the padding efficiency of
one epoch (real / padded nodes and edges), the number of distinct batch shapes,
and the train-step throughput in real atoms per second over one epoch of steps
on batches already on the device, after a first epoch that compiles every shape
(its time is reported too). Medians over the rounds, and ratios to the baseline.
"""

import os
import statistics
import time
from pathlib import Path

from benchmarks.harness import (
    alternate,
    argument_parser,
    print_columns,
    run_in_child,
    write_record,
)

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlip_eqx"
DATA_PATH = CACHE / "benchmark_mixed_sizes_v1.extxyz"
ELEMENTS = ("Cu", "Ag", "Au", "Ni")


def generate(path: Path, num_clusters: int = 300, num_cells: int = 300) -> None:
    """Writes the mixed data set to ``path`` (deterministic, seed 0)."""
    import ase.io
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(0)
    structures = []
    lattice = bulk("Cu", "fcc", a=3.8, cubic=True).repeat((5, 5, 5))
    centre = lattice.get_center_of_mass()
    for _ in range(num_clusters):
        size = int(rng.integers(5, 31))
        distances = np.linalg.norm(
            lattice.positions - centre - rng.normal(0, 0.5, 3), axis=1
        )
        atoms = lattice[np.argsort(distances)[:size]]
        atoms.set_cell(np.zeros((3, 3)))
        atoms.pbc = False
        structures.append(atoms)
    for _ in range(num_cells):
        size = int(rng.integers(32, 257))
        reps = min(
            (r for r in np.ndindex(5, 5, 5) if 4 * np.prod(np.add(r, 1)) >= size),
            key=lambda r: (4 * np.prod(np.add(r, 1)), -min(r)),
        )
        atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat(tuple(np.add(reps, 1)))
        del atoms[rng.choice(len(atoms), len(atoms) - size, replace=False).tolist()]
        strain = np.eye(3) + rng.uniform(-0.02, 0.02, (3, 3))
        atoms.set_cell(atoms.cell @ (strain + strain.T) / 2, scale_atoms=True)
        structures.append(atoms)
    for atoms in structures:
        atoms.symbols = rng.choice(ELEMENTS, len(atoms)).tolist()
        atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
        atoms.calc = None
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    ase.io.write(temporary, structures, format="extxyz")
    temporary.replace(path)


def measure(max_batch_shapes: int | None, repeats: int) -> dict:
    """One configuration, in this process (the mlip_eqx first on ``sys.path``)."""
    import jax
    import numpy as np

    from mlip_eqx.data import ExtxyzReader, GraphDatasetBuilder
    from mlip_eqx.models import ForceField, Mace
    from mlip_eqx.models.loss import MSELoss
    from mlip_eqx.training.mesh import batch_sharding, make_mesh
    from mlip_eqx.training.optimizer import get_default_mlip_optimizer
    from mlip_eqx.training.training_state import init_training_state
    from mlip_eqx.training.training_step import make_train_step

    extra = {} if max_batch_shapes is None else {"max_batch_shapes": max_batch_shapes}
    reader = ExtxyzReader(
        ExtxyzReader.Config(
            train_dataset_paths=str(DATA_PATH), required_labels=("energy", "forces")
        )
    )
    config = GraphDatasetBuilder.Config(
        graph_cutoff_angstrom=5.0, batch_size=8, validation_fraction=0.0, **extra
    )
    builder = GraphDatasetBuilder(reader, config)
    builder.prepare_datasets()
    train_set = builder.get_splits()[0]
    mesh = make_mesh(jax.devices()[:1])
    sharding = batch_sharding(mesh)
    force_field = ForceField.from_mlip_network(
        Mace(
            Mace.Config(num_channels=32, l_max=2, correlation=3, num_layers=2),
            builder.dataset_info,
        )
    )
    optimizer = get_default_mlip_optimizer()
    state = init_training_state(force_field, optimizer, mesh=mesh)
    step = make_train_step(force_field, MSELoss(), optimizer, mesh=mesh)

    def epoch_batches(epoch: int) -> list:
        return [
            jax.device_put(batch, sharding)
            for batch in train_set.iter_batches(epoch, num_devices=1)
        ]

    first = epoch_batches(0)
    real_nodes = sum(int(np.sum(b.node_mask)) for b in first)
    real_edges = sum(int(np.sum(b.edge_mask)) for b in first)
    padded_nodes = sum(b.node_mask.size for b in first)
    padded_edges = sum(b.edge_mask.size for b in first)
    shapes = {(b.num_nodes, b.num_edges, b.num_graphs) for b in first}
    start = time.perf_counter()
    for batch in first:
        state, metrics = step(state, batch, 0)
    jax.block_until_ready(metrics)
    first_epoch_seconds = time.perf_counter() - start
    rates = []
    for epoch in range(1, repeats + 1):
        batches = epoch_batches(epoch)
        start = time.perf_counter()
        for batch in batches:
            state, metrics = step(state, batch, epoch)
        jax.block_until_ready(metrics)
        rates.append(real_nodes / (time.perf_counter() - start))
    import mlip_eqx

    return {
        "code": str(Path(mlip_eqx.__file__).parents[1]),
        "num_structures": len(train_set.graphs),
        "num_shapes": len(shapes),
        "batches_per_epoch": len(first),
        "padding_efficiency_nodes": real_nodes / padded_nodes,
        "padding_efficiency_edges": real_edges / padded_edges,
        "real_edges_per_epoch": real_edges,
        "first_epoch_seconds_with_compiles": first_epoch_seconds,
        "train_atoms_per_second": statistics.median(rates),
    }


def main() -> None:
    parser = argument_parser(__doc__, "mixed_sizes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--baseline-path", default=None)
    args = parser.parse_args()
    if not DATA_PATH.exists():
        print(f"generating {DATA_PATH}", flush=True)
        generate(DATA_PATH)
    configurations = {"bucketed (default)": (None, None), "one shape": (None, 1)}
    if args.baseline_path:
        configurations["baseline"] = (Path(args.baseline_path).resolve(), None)

    def configuration(name: str, library_path: Path | None, shapes: int | None):
        def run(round_index: int) -> dict:
            result = run_in_child(
                measure, shapes, args.repeats, library_path=library_path
            ).value
            print(f"round {round_index + 1}, {name}: {result}", flush=True)
            return result

        return run

    runs = alternate(
        range(args.rounds),
        {name: configuration(name, *setting)
         for name, setting in configurations.items()},
    )  # fmt: skip
    summary = {
        name: {
            key: statistics.median(run[key] for run in results)
            for key in results[0]
            if key != "code"
        }
        for name, results in runs.items()
    }
    if "baseline" in runs:
        for name, results in runs.items():
            ratios = [
                run["train_atoms_per_second"] / base["train_atoms_per_second"]
                for run, base in zip(results, runs["baseline"])
            ]
            summary[name]["throughput_ratio_to_baseline"] = statistics.median(ratios)
    print_columns(
        [{"configuration": name, **values} for name, values in summary.items()],
        "configuration",
        width=22,
    )
    write_record(
        args.output,
        {
            "rounds": args.rounds,
            "statistic": "median over rounds",
            "baseline_path": args.baseline_path,
            "summary": summary,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
