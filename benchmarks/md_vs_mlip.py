"""MD speed: mlip_eqx's JAX-MD engine and ASE calculator against mlip 0.2.5's.

Usage:
    python -m benchmarks.md_vs_mlip [--mlip-python /tmp/peer_mlip/bin/python]
        [--sizes 32 256 2048] [--models small default] [--repeats 1]
        [--threads 2] [--output benchmarks/results/md_vs_mlip.json]

Structures: rattled periodic fcc cells of Cu/Ag/Au/Ni (random species, lattice
3.8 Å, 2x2x2, 4x4x4 and 8x8x8 conventional cells: 32, 256 and 2,048 atoms;
the 32-atom cell is 7.6 Å wide, narrower than twice the 5 Å cutoff).
Models: MACE "small" (32 channels, l_max 2) and "default" (128 channels, l_max
3), correlation 3, 2 layers, 8 Bessel functions, cutoff 5 Å, float32, the same
DatasetInfo, each library's own random initial weights (seed 42): speed does not
depend on the weights' values, and both models are checked to give finite
energies. Simulation: NVT Langevin at 300 K, time step 1 fs, friction 0.01/fs,
each library's default neighbour-list settings, 6 episodes (the first includes
compilation); seconds per step are the median over episodes 2-6 of the time
between logger calls divided by the steps of an episode. The ASE calculator:
energy + forces of the structure after moving one atom by 0.01 Å (so that
nothing is cached), median over ``--calls`` calls after a warm-up call.

Each library runs in its own child process (mlip in its own interpreter;
``peers/md.py``); with ``--repeats`` above 1 the children alternate
and every number is the median over repeats. The ratio is mlip's time over
ours from the same run. Prints a table and writes JSON.
"""

import statistics

from benchmarks.harness import (
    alternate,
    argument_parser,
    print_rows,
    run_in_child,
    write_record,
)
from benchmarks.peers import md


def median_of(runs: list[dict], size: str, part: str, key: str):
    values = [run["sizes"][size][part].get(key) for run in runs]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def table_rows(runs: dict[str, list[dict]], sizes: list[int]) -> list[dict]:
    """One row per size: medians over the repeats, and mlip's time over ours."""
    rows = []
    for size in map(str, sizes):
        row = {"atoms": int(size)}
        for package in runs:
            row[f"{package}_ms_per_step"] = median_of(
                runs[package], size, "engine", "ms_per_step"
            )
            row[f"{package}_calculator_ms"] = median_of(
                runs[package], size, "calculator", "ms_per_call"
            )
            errors = [r["sizes"][size]["engine"].get("error") for r in runs[package]]
            if any(errors):
                row[f"{package}_engine_error"] = next(e for e in errors if e)
        if row.get("mlip_ms_per_step") and row.get("mlip_eqx_ms_per_step"):
            row["engine_speedup"] = (
                row["mlip_ms_per_step"] / row["mlip_eqx_ms_per_step"]
            )
        if row.get("mlip_calculator_ms"):
            row["calculator_speedup"] = (
                row["mlip_calculator_ms"] / row["mlip_eqx_calculator_ms"]
            )
        rows.append(row)
    return rows


def main() -> None:
    parser = argument_parser(__doc__, "md_vs_mlip", work_dir="/tmp/md_vs_mlip")
    parser.add_argument("--mlip-python", help="interpreter with mlip 0.2.5")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 256, 2048])
    parser.add_argument("--models", nargs="+", default=["small"], choices=md.MODELS)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    pythons = {"mlip_eqx": None}
    if args.mlip_python:
        pythons["mlip"] = args.mlip_python
    record = {"sizes": args.sizes, "repeats": args.repeats, "models": {}}
    for model in args.models:

        def time_library(package: str, model=model):
            return lambda _: run_in_child(
                md.time_library, package, model, args.sizes, args.calls,
                python=pythons[package],
                environment={"OMP_NUM_THREADS": str(args.threads)},
                log=args.work_dir / f"{package}_{model}.log",
            ).value  # fmt: skip

        runs = alternate(
            range(args.repeats), {package: time_library(package) for package in pythons}
        )
        rows = table_rows(runs, args.sizes)
        record["models"][model] = {"rows": rows, "runs": runs}
        print(f"\nMACE {model}: ms per MD step (NVT, 1 fs) and per calculator call")
        print_rows(
            rows,
            [("atoms", "atoms", 0), ("ours", "mlip_eqx_ms_per_step", 1),
             ("mlip", "mlip_ms_per_step", 1), ("ratio", "engine_speedup", 2),
             ("calc ours", "mlip_eqx_calculator_ms", 1),
             ("calc mlip", "mlip_calculator_ms", 1),
             ("ratio", "calculator_speedup", 2)],
        )  # fmt: skip
        for row in rows:
            if row.get("mlip_engine_error"):
                print(f"{row['atoms']} atoms, mlip engine: {row['mlip_engine_error']}")
    write_record(args.output, record)


if __name__ == "__main__":
    main()
