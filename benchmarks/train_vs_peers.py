"""Training speed and accuracy of MACE, NequIP or ViSNet: mlip_eqx against mlip
and mace-torch.

Usage:
    python -m benchmarks.train_vs_peers [--epochs 3] [--model mace|nequip|visnet]
        [--mlip-python /tmp/peer_mlip/bin/python]
        [--mace-python /tmp/peer_mace/bin/python]
        [--work-dir /tmp/train_vs_peers] [--threads 2] [--seeds 42 7 1] [--skip-ours]
        [--peer-host-memory]
        [--output benchmarks/results/train_vs_peers.json]

Data: 1000 EMT-labelled 32-atom fcc Cu/Ag/Au/Ni cells from our demo generator
(seed 0), split 800 train / 100 validation / 100 test (test unused), written as
extxyz with both ``REF_energy``/``REF_forces`` and calculator ``energy``/``forces``
so that every library reads the same labels. Model: MACE, 32 channels, l_max 2,
correlation 3, 2 layers, 8 Bessel functions, cutoff 5 Å, or (``--model nequip``,
against mlip only: its ``models_v1.Nequip``) NequIP with node irreps 32x0e +
32x0o + 16x1o + 16x1e, l_max 2, 2 layers, 8 Bessel functions, or (``--model
visnet``, against mlip only: its ``models.Visnet`` with ``use_legacy_visnet=False``)
ViSNet with 64 channels, 2 layers and the other defaults (l_max 2, 8 heads, 32
exp-normal functions); batch size 8, float32,
MSE loss with energy weight 1 and forces weight 25, AMSGrad at lr 0.01 without
warm-up, EMA 0.99 (validation with the EMA parameters).

Each library trains in its own child process (its own interpreter for the peers:
mlip through its public Python API, mace-torch through ``mace_run_train``; see
``benchmarks/peers/``). Epoch time is the training pass only (no validation);
seconds per epoch are the median over the epochs after the first; the first
epoch includes compilation. Peak memory is the child's peak resident set size
(VmHWM). Validation MAEs are each library's own numbers after each epoch.
With several ``--seeds`` (weights' seeds, used by every library) each library trains
once per seed: seconds per epoch are then the median over all seeds' epochs after the
first, and MAEs are the mean over seeds (each seed's are listed too). Prints a table
and writes JSON. See benchmarks/README.md for the peers' setup.

``import mlip_eqx`` makes one CPU step's memory serve the next
(``mlip_eqx/utils/host_memory.py``); mlip runs with glibc's and JAX's defaults, or
with ``--peer-host-memory`` with the same settings as mlip_eqx.
"""

import statistics

from benchmarks.harness import (
    alternate,
    argument_parser,
    print_columns,
    run_in_child,
    write_record,
)
from benchmarks.peers import mace_torch, training

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def run_library(library: str, args, seed: int) -> dict:
    """One training run of ``library`` in its child; its epochs, wall time and
    peak memory."""
    work_dir = args.work_dir
    environment = {name: str(args.threads) for name in THREAD_VARIABLES}
    log = work_dir / f"{library}_{args.model}.log"
    if library == "mlip_eqx":
        child = run_in_child(
            training.train_jax_library, "mlip_eqx", work_dir, args.epochs, seed,
            args.model, environment=environment, log=log,
        )  # fmt: skip
    elif library == "mlip":
        child = run_in_child(
            training.train_mlip, work_dir, args.epochs, seed, args.model,
            args.peer_host_memory, python=args.mlip_python, environment=environment,
            log=log,
        )  # fmt: skip
    else:
        child = run_in_child(
            mace_torch.train, work_dir, args.epochs, seed, python=args.mace_python,
            environment=environment, log=work_dir / "mace.log",
        )  # fmt: skip
    return {**child.value, "wall_s": child.wall_s, "peak_rss_mib": child.peak_rss_mib,
            "seed": seed}  # fmt: skip


def energy_mae_per_atom(epoch: dict, atoms_per_structure: float) -> float:
    """Validation energy MAE in eV/atom (exact for equal-sized structures)."""
    if "valid_mae_e_per_atom" in epoch:
        return epoch["valid_mae_e_per_atom"]
    return epoch.get("valid_mae_e", float("nan")) / atoms_per_structure


def standard_error(values: list[float]) -> float:
    """Standard error of the mean of per-seed values (nan for one seed)."""
    if len(values) < 2:
        return float("nan")
    return statistics.stdev(values) / len(values) ** 0.5


def summarise(runs: list[dict], sizes: dict) -> dict:
    """One library's runs (one per seed) in one row."""
    later = [e["train_s"] for run in runs for e in run["epochs"][1:]]
    per_epoch = statistics.median(
        later or [run["epochs"][0]["train_s"] for run in runs]
    )
    atoms_per_structure = sizes["valid"]["atoms"] / sizes["valid"]["structures"]
    finals = [run["epochs"][-1] for run in runs]
    return {
        "library": runs[0]["library"],
        "version": runs[0]["version"],
        "s_per_epoch": per_epoch,
        "structures_per_s": sizes["train"]["structures"] / per_epoch,
        "atoms_per_s": sizes["train"]["atoms"] / per_epoch,
        "first_epoch_s": statistics.median(run["epochs"][0]["train_s"] for run in runs),
        "peak_rss_mib": max(run["peak_rss_mib"] for run in runs),
        "num_parameters": runs[0]["num_parameters"],
        "num_seeds": len(runs),
        "final_valid_mae_f_meV_per_A": 1000
        * statistics.mean(e.get("valid_mae_f", float("nan")) for e in finals),
        "final_valid_mae_f_sem_meV_per_A": 1000
        * standard_error([e.get("valid_mae_f", float("nan")) for e in finals]),
        "final_valid_mae_e_meV_per_atom": 1000
        * statistics.mean(energy_mae_per_atom(e, atoms_per_structure) for e in finals),
    }


def print_table(rows: list[dict], runs: dict[str, list[dict]], sizes: dict) -> None:
    ours = [row for row in rows if row["library"] == "mlip_eqx"]
    speed_up = "speed-up of mlip_eqx"
    columns = [
        {**row, speed_up: row["s_per_epoch"] / ours[0]["s_per_epoch"]} if ours else row
        for row in rows
    ]
    print_columns(columns, "library", digits=2)
    atoms_per_structure = sizes["valid"]["atoms"] / sizes["valid"]["structures"]

    def maes(epoch: dict) -> tuple[float, float]:
        return (
            1000 * epoch.get("valid_mae_f", float("nan")),
            1000 * energy_mae_per_atom(epoch, atoms_per_structure),
        )

    print("\nper epoch: train s | valid force MAE meV/Å | valid energy MAE meV/atom")
    for library, library_runs in runs.items():
        for run in library_runs:
            for epoch in run["epochs"]:
                force_mae, energy_mae = maes(epoch)
                print(
                    f"  {library:12s} seed {run['seed']:3d} epoch {epoch['epoch']:2d}: "
                    f"{epoch['train_s']:8.1f} s | {force_mae:7.1f} | {energy_mae:7.2f}"
                )
    print("\nmean over seeds: valid force MAE meV/Å | valid energy MAE meV/atom")
    for library, library_runs in runs.items():
        for index in range(min(len(run["epochs"]) for run in library_runs)):
            values = [maes(run["epochs"][index]) for run in library_runs]
            force_mae = statistics.mean(v[0] for v in values)
            energy_mae = statistics.mean(v[1] for v in values)
            print(
                f"  {library:12s} epoch {index + 1:2d}: {force_mae:7.1f} "
                f"(seeds: {', '.join(f'{v[0]:.1f}' for v in values)}) | "
                f"{energy_mae:7.2f}"
            )
    for row in rows[1:] if ours else []:  # ours is the first row when it ran
        if min(row["num_seeds"], ours[0]["num_seeds"]) < 2:
            continue
        key, sem = "final_valid_mae_f_meV_per_A", "final_valid_mae_f_sem_meV_per_A"
        difference = ours[0][key] - row[key]
        error = (ours[0][sem] ** 2 + row[sem] ** 2) ** 0.5
        print(
            f"final force MAE, mlip_eqx - {row['library']}: {difference:+.2f} ± "
            f"{error:.2f} meV/Å (Welch t = {difference / max(error, 1e-12):+.2f}; "
            f"{ours[0]['num_seeds']} and {row['num_seeds']} seeds)"
        )
    for library_runs in runs.values():
        padding = library_runs[0].get("padding_efficiency")
        if padding:
            print(
                f"padding efficiency of {library_runs[0]['library']}: nodes "
                f"{padding['nodes']:.1%}, edges {padding['edges']:.1%}, graphs "
                f"{padding['graphs']:.1%} ({padding['num_batches']} batches)"
            )


def main() -> None:
    parser = argument_parser(__doc__, "train_vs_peers", work_dir="/tmp/train_vs_peers")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--model", choices=("mace", "nequip", "visnet"), default="mace")
    parser.add_argument("--mlip-python", help="interpreter with mlip installed")
    parser.add_argument("--mace-python", help="interpreter with mace-torch installed")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[training.MODEL_SEED],
        help="seeds of the models' weights; one run per library and seed",
    )
    parser.add_argument(
        "--peer-host-memory",
        action="store_true",
        help="run mlip with mlip_eqx's host-memory settings "
        "(mlip_eqx/utils/host_memory.py), to see what they do for mlip",
    )
    args = parser.parse_args()
    sizes = training.prepare_data(args.work_dir)
    libraries = [
        library
        for library, wanted in (
            ("mlip_eqx", not args.skip_ours),
            ("mlip", args.mlip_python),
            ("mace-torch", args.mace_python and args.model == "mace"),
        )
        if wanted
    ]
    runs = alternate(
        args.seeds,
        {library: (lambda seed, library=library: run_library(library, args, seed))
         for library in libraries},
    )  # fmt: skip
    rows = [summarise(library_runs, sizes) for library_runs in runs.values()]
    print_table(rows, runs, sizes)
    write_record(
        args.output,
        {
            "model": args.model,
            "threads": args.threads,
            "peer_host_memory": args.peer_host_memory,
            "epochs": args.epochs,
            "seeds": args.seeds,
            "data": sizes,
            "statistic": "median of the epochs after the first (all seeds); "
            "MAEs: mean over seeds",
            "summary": rows,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
