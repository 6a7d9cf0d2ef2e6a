"""One large periodic structure (default 5,000 atoms, cutoff 5 Å): train steps and
predictions with batch size 1, their time and the peak memory.

Usage:
    python -m benchmarks.large_structure [--atoms 5000] [--steps 3]
        [--output benchmarks/results/large_structure.json]

The structure is an fcc Cu/Ag/Au/Ni alloy cell with EMT labels, of about
``--atoms`` atoms (an 11x11x10 conventional supercell, 4,840 atoms, for 5,000), read
through ``GraphDatasetBuilder`` with default settings except ``batch_size=1``.
Model: the main job's MACE (32 channels, l_max 2, correlation 3, 2 layers).
Reports the graph size, graph-building time, the first train step (compile
included), the median of the next ``--steps`` train steps, the same for
predictions, and the process's peak resident memory (VmHWM) after each phase.
"""

import time

import numpy as np

from benchmarks.harness import (
    argument_parser,
    median_seconds,
    peak_rss_mib,
    write_record,
)


def large_alloy(num_atoms: int, seed: int = 0):
    """An EMT-labelled random fcc alloy of about ``num_atoms`` atoms (4 per cell)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    cells = num_atoms / 4
    side = int(round(cells ** (1 / 3)))
    repeat = (side, side, max(1, int(round(cells / side**2))))
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat(repeat)
    rng = np.random.default_rng(seed)
    atoms.numbers = rng.choice([28, 29, 47, 79], size=len(atoms))
    atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
    atoms.calc = EMT()
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return atoms


def main() -> None:
    parser = argument_parser(__doc__, "large_structure")
    parser.add_argument("--atoms", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()

    import jax

    from mlip_eqx.data import ASEAtomsReader, GraphDatasetBuilder
    from mlip_eqx.graph import stack_graphs
    from mlip_eqx.inference import make_predictor
    from mlip_eqx.models import ForceField, Mace
    from mlip_eqx.models.loss import MSELoss
    from mlip_eqx.training import (
        get_default_mlip_optimizer,
        init_training_state,
        make_train_step,
    )

    atoms = large_alloy(args.atoms)
    start = time.perf_counter()
    builder = GraphDatasetBuilder(
        ASEAtomsReader([atoms], [atoms]), GraphDatasetBuilder.Config(batch_size=1)
    )
    builder.prepare_datasets()
    graph_seconds = time.perf_counter() - start
    train_set = builder.get_splits()[0]
    [batch] = list(train_set.iter_batches(0))
    record = {
        "num_atoms": len(atoms),
        "num_edges": int(train_set.graphs[0].n_edge[0]),
        "graph_building_s": graph_seconds,
        "peak_rss_after_graphs_mib": peak_rss_mib(),
    }
    mace = Mace(
        Mace.Config(num_channels=32, l_max=2, correlation=3, num_layers=2),
        builder.dataset_info,
    )
    force_field = ForceField.from_mlip_network(mace)
    optimizer = get_default_mlip_optimizer()
    state = init_training_state(force_field, optimizer)
    train_step = make_train_step(force_field, MSELoss(), optimizer)
    stacked = stack_graphs([batch])

    holder = {"state": state}

    def one_train_step():
        holder["state"], metrics = train_step(holder["state"], stacked, 0)
        return jax.block_until_ready(holder["state"].params)

    record["first_train_step_s"], _ = median_seconds(one_train_step, 1)
    record["train_step_s"], _ = median_seconds(one_train_step, args.steps)
    record["peak_rss_after_training_mib"] = peak_rss_mib()
    predict = make_predictor(force_field)

    def one_prediction():
        return jax.block_until_ready(predict(batch).forces)

    record["first_prediction_s"], _ = median_seconds(one_prediction, 1)
    record["prediction_s"], _ = median_seconds(one_prediction, args.steps)
    record["peak_rss_after_prediction_mib"] = peak_rss_mib()
    for key, value in record.items():
        print(f"{key:32s} {value:12.2f}")
    write_record(args.output, record)


if __name__ == "__main__":
    main()
