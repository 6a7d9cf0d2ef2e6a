"""A converted mace-torch foundation model of MACE-MP-0 medium's size: ASE
calculator call and MD step time, mlip_eqx against mace-torch on this CPU.

Usage:
    python -m benchmarks.foundation_model [--sizes 64 512 4096] [--calls 5]
        [--steps 5] [--repeats 1] [--threads 2] [--seed 0]
        [--work-dir /tmp/foundation_model]
        [--output benchmarks/results/foundation_model.json]

Model: a ``ScaleShiftMACE`` with MACE-MP-0 medium's hyperparameters (its training
script: 128x0e+128x1o, max_ell 3, correlation 3, 2 interactions, r_max 6 Å, 10
Bessel functions, radial MLP [64, 64, 64], MLP 16x0e, 89 elements, residual
first block) and mace-torch's own random initial weights, saved with
``torch.save`` as the foundation models are distributed, then converted by
``mlip-eqx convert --dtype float32`` (speed does not depend on the weights'
values; the real files cannot be downloaded here). Both in float32 on the CPU.

Structures: rattled periodic fcc cells of random Cu/Ni/Al/Fe (lattice 3.6 Å;
64, 512 and 4,096 atoms; about 78 neighbours per atom within 6 Å).

Measured, each library in its own child process (``peers/foundation.py``), one
after the other, alternating over ``--repeats``:
- calculator: energy + forces of the structure after moving one atom by 0.01 Å,
  median over ``--calls`` calls after a warm-up call (mace-torch's
  ``MACECalculator``, our ``MLIPForceFieldASECalculator``);
- MD step: mace-torch through ASE's Langevin driving its calculator (its MD
  route), ours through our JAX-MD engine (NVT Langevin, 300 K, 1 fs), median
  over ``--steps`` steps (ours: episodes of that many steps, after the first);
- the child's peak resident memory after each size (sizes run in increasing
  order); a size that fails (e.g. out of memory) is recorded with its error and
  an empty time.
The ratio is mace-torch's time over ours from the same run. Fine-tuning epochs
of the same model: ``foundation_fine_tuning``.
"""

import statistics

from benchmarks.harness import (
    alternate,
    argument_parser,
    print_rows,
    run_in_child,
    write_record,
)
from benchmarks.peers import foundation

LIBRARIES = ("mlip_eqx", "mace-torch")
FIELDS = {"calculator": "ms_per_call", "engine": "ms_per_step"}


def table_rows(runs: dict[str, list[dict]], sizes: list[int]) -> list[dict]:
    """One row per size: medians over the repeats, and mace-torch's time over
    ours."""
    rows = []
    for size in map(str, sizes):
        row = {"atoms": int(size)}
        for library, key in (("mlip_eqx", "ours"), ("mace-torch", "torch")):
            entries = [run["sizes"][size] for run in runs[library]]
            row[f"{key}_peak_rss_mib"] = max(e["peak_rss_mib"] for e in entries)
            for part, field in FIELDS.items():
                values = [e[part][field] for e in entries if part in e]
                # None: every run of this size failed (its error is in runs)
                row[f"{key}_{part}_ms"] = statistics.median(values) if values else None
        for part in ("calculator", "engine"):
            ours, torch = row[f"ours_{part}_ms"], row[f"torch_{part}_ms"]
            row[f"{part}_ratio"] = torch / ours if ours and torch else None
        rows.append(row)
    return rows


def main() -> None:
    parser = argument_parser(
        __doc__, "foundation_model", work_dir="/tmp/foundation_model"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 512, 4096])
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    environment = {"OMP_NUM_THREADS": str(args.threads)}
    model_file, zip_file, versions = foundation.written_models(
        args.work_dir, args.seed, environment
    )
    timers = {
        "mlip_eqx": foundation.time_ours,
        "mace-torch": foundation.time_mace_torch,
    }

    def timed(library: str):
        source = zip_file if library == "mlip_eqx" else model_file
        return lambda _: run_in_child(
            timers[library], str(source), args.sizes, args.calls, args.steps,
            environment=environment, log=args.work_dir / f"{library}.log",
        ).value  # fmt: skip

    runs = alternate(range(args.repeats), {name: timed(name) for name in LIBRARIES})
    rows = table_rows(runs, args.sizes)
    print("\nMACE-MP-0 medium size, float32: ms per calculator call and per MD step")
    print_rows(
        rows,
        [("atoms", "atoms", 0),
         ("calc ours", "ours_calculator_ms", 1),
         ("calc torch", "torch_calculator_ms", 1),
         ("ratio", "calculator_ratio", 2),
         ("MD ours", "ours_engine_ms", 1), ("MD torch", "torch_engine_ms", 1),
         ("ratio", "engine_ratio", 2),
         ("peak MiB ours", "ours_peak_rss_mib", 0),
         ("peak MiB torch", "torch_peak_rss_mib", 0)],
    )  # fmt: skip
    write_record(
        args.output,
        {"sizes": args.sizes, "repeats": args.repeats, "versions": versions,
         "rows": rows, "runs": runs},
    )  # fmt: skip


if __name__ == "__main__":
    main()
