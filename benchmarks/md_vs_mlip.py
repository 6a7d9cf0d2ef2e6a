"""MD speed: mlip_eqx's JAX-MD engine and ASE calculator against mlip 0.2.5's.

Usage:
    python benchmarks/md_vs_mlip.py [--mlip-python /tmp/peer_mlip/bin/python]
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

Each library runs in its own child process (mlip in its own interpreter, this
file run as a script there); with ``--repeats`` above 1 the children alternate
and every number is the median over repeats. The ratio is mlip's time over
ours from the same run. Prints a table and writes JSON.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import write_record

ELEMENTS = (29, 47, 28, 79)  # Cu, Ag, Ni, Au
LATTICE_ANGSTROM = 3.8
CUTOFF_ANGSTROM = 5.0
REPEATS_OF_SIZE = {32: 2, 108: 3, 256: 4, 2048: 8}
STEPS_PER_EPISODE = {32: 20, 108: 20, 256: 20, 2048: 10}
NUM_EPISODES = 6
MODELS = {
    "small": {"num_channels": 32, "l_max": 2},
    "default": {"num_channels": 128, "l_max": 3},
}


def structure(num_atoms: int):
    """A rattled periodic fcc cell of random Cu/Ag/Au/Ni (seeded)."""
    import ase.build
    import numpy as np

    repeats = REPEATS_OF_SIZE[num_atoms]
    atoms = ase.build.bulk("Cu", "fcc", a=LATTICE_ANGSTROM, cubic=True)
    atoms = atoms.repeat((repeats, repeats, repeats))
    rng = np.random.default_rng(num_atoms)
    atoms.numbers = rng.choice(ELEMENTS, len(atoms))
    atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
    return atoms


def build_force_field(package: str, model: str):
    """A MACE force field of ``package`` ("mlip_eqx" or "mlip")."""
    import importlib

    models = importlib.import_module(f"{package}.models")
    data = importlib.import_module(f"{package}.data")
    info_fields = dict(
        atomic_energies_map={z: -3.0 for z in ELEMENTS},
        avg_num_neighbors=40.0,
        avg_r_min_angstrom=2.5,
        scaling_mean=0.0,
        scaling_stdev=1.0,
    )
    cutoff_name = (
        "cutoff_distance_angstrom" if package == "mlip_eqx" else "graph_cutoff_angstrom"
    )
    info = data.DatasetInfo(**info_fields, **{cutoff_name: CUTOFF_ANGSTROM})
    radial = {"num_bessel" if package == "mlip_eqx" else "num_rbf": 8}
    config = models.Mace.Config(**MODELS[model], correlation=3, num_layers=2, **radial)
    return models.ForceField.from_mlip_network(models.Mace(config, info), seed=42)


def time_engine(package: str, force_field, atoms) -> dict:
    """Seconds per MD step of ``package``'s JAX-MD engine on ``atoms``."""
    import importlib

    import numpy as np

    jax_md = importlib.import_module(f"{package}.simulation.jax_md")
    enums = importlib.import_module(f"{package}.simulation.enums")
    steps = STEPS_PER_EPISODE[len(atoms)]
    config = jax_md.JaxMDSimulationEngine.Config(
        simulation_type=enums.SimulationType.MD,
        md_integrator=enums.MDIntegrator.NVT_LANGEVIN,
        num_steps=steps * NUM_EPISODES,
        num_episodes=NUM_EPISODES,
        snapshot_interval=steps,
        timestep_fs=1.0,
        temperature_kelvin=300.0,
        friction=0.01,
    )
    start = time.perf_counter()
    engine = jax_md.JaxMDSimulationEngine(atoms, force_field, config)
    setup_s = time.perf_counter() - start
    stamps = []
    engine.attach_logger(lambda state: stamps.append(time.perf_counter()))
    start = time.perf_counter()
    engine.run()
    episodes = np.diff([start] + stamps)
    if len(episodes) > NUM_EPISODES:  # ours also logs the initial state
        episodes = np.diff(stamps)
    energies = np.asarray(engine.state.potential_energy)
    result = {
        "setup_s": setup_s,
        "first_episode_s": float(episodes[0]),
        "ms_per_step": 1e3 * statistics.median(episodes[1:]) / steps,
        "episode_s": [float(x) for x in episodes],
        "finite": bool(np.isfinite(energies).all()),
        "max_temperature_k": float(np.max(engine.state.temperature)),
    }
    if hasattr(engine, "num_neighbor_list_builds"):
        result["neighbor_list_builds"] = engine.num_neighbor_list_builds
    return result


def time_calculator(package: str, force_field, atoms, calls: int) -> dict:
    """Milliseconds per energy + forces call of ``package``'s ASE calculator."""
    import importlib

    calculator_module = importlib.import_module(
        f"{package}.simulation.ase.mlip_ase_calculator"
    )
    atoms = atoms.copy()
    atoms.calc = calculator_module.MLIPForceFieldASECalculator(atoms, 1.25, force_field)
    times = []
    for call in range(calls + 1):
        positions = atoms.get_positions()
        positions[0, 0] += 0.01
        atoms.set_positions(positions)
        start = time.perf_counter()
        atoms.get_potential_energy()
        atoms.get_forces()
        if call:
            times.append(time.perf_counter() - start)
    return {"ms_per_call": 1e3 * statistics.median(times)}


def child(package: str, model: str, sizes: list[int], calls: int, output: Path):
    """Times one library on every size; writes JSON to ``output``."""
    import importlib.metadata

    import jax

    force_field = build_force_field(package, model)
    results = {
        "library": package,
        "version": importlib.metadata.version(package.replace("_", "-")),
        "jax": jax.__version__,
        "num_parameters": int(sum(x.size for x in jax.tree.leaves(force_field.params))),
        "sizes": {},
    }
    for size in sizes:
        atoms = structure(size)
        entry = {}
        try:
            entry["engine"] = time_engine(package, force_field, atoms)
        except Exception as error:  # a library that refuses the cell: reported
            entry["engine"] = {"error": f"{type(error).__name__}: {error}"[:300]}
        entry["calculator"] = time_calculator(package, force_field, atoms, calls)
        results["sizes"][str(size)] = entry
        print(package, model, size, json.dumps(entry), flush=True)
    output.write_text(json.dumps(results))


def run_child(python: str, package: str, model: str, args, work_dir: Path) -> dict:
    """Runs :func:`child` in ``python``; returns its JSON."""
    output = work_dir / f"{package}_{model}.json"
    environment = dict(
        os.environ,
        OMP_NUM_THREADS=str(args.threads),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    command = [python, str(Path(__file__).resolve()), "--child", package,
               "--model", model, "--sizes", *map(str, args.sizes),
               "--calls", str(args.calls), "--child-output", str(output)]  # fmt: skip
    log = work_dir / f"{package}_{model}.log"
    with open(log, "w") as stream:
        status = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT,
                                env=environment, check=False)  # fmt: skip
    if status.returncode:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise RuntimeError(f"{package} failed; {log}:\n{tail}")
    return json.loads(output.read_text())


def median_of(runs: list[dict], size: str, part: str, key: str):
    values = [run["sizes"][size][part].get(key) for run in runs]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mlip-python", help="interpreter with mlip 0.2.5")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 256, 2048])
    parser.add_argument("--models", nargs="+", default=["small"], choices=MODELS)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/md_vs_mlip"))
    parser.add_argument(
        "--output", type=Path, default=Path("benchmarks/results/md_vs_mlip.json")
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model, args.sizes, args.calls, args.child_output)
        return
    args.work_dir.mkdir(parents=True, exist_ok=True)
    libraries = [("mlip_eqx", sys.executable)]
    if args.mlip_python:
        libraries.append(("mlip", args.mlip_python))
    record = {"sizes": args.sizes, "repeats": args.repeats, "models": {}}
    for model in args.models:
        runs = {package: [] for package, _ in libraries}
        for _ in range(args.repeats):
            for package, python in libraries:
                runs[package].append(
                    run_child(python, package, model, args, args.work_dir)
                )
        rows = []
        for size in map(str, args.sizes):
            row = {"atoms": int(size)}
            for package in runs:
                row[f"{package}_ms_per_step"] = median_of(
                    runs[package], size, "engine", "ms_per_step"
                )
                row[f"{package}_calculator_ms"] = median_of(
                    runs[package], size, "calculator", "ms_per_call"
                )
                errors = [
                    r["sizes"][size]["engine"].get("error") for r in runs[package]
                ]
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
        record["models"][model] = {"rows": rows, "runs": runs}
        print(f"\nMACE {model}: ms per MD step (NVT, 1 fs) and per calculator call")
        print(f"{'atoms':>6} {'ours':>9} {'mlip':>9} {'ratio':>6} "
              f"{'calc ours':>10} {'calc mlip':>10} {'ratio':>6}")  # fmt: skip
        for row in rows:

            def cell(key, digits=1, row=row):
                value = row.get(key)
                return "-" if value is None else f"{value:.{digits}f}"

            print(f"{row['atoms']:>6} {cell('mlip_eqx_ms_per_step'):>9} "
                  f"{cell('mlip_ms_per_step'):>9} {cell('engine_speedup', 2):>6} "
                  f"{cell('mlip_eqx_calculator_ms'):>10} "
                  f"{cell('mlip_calculator_ms'):>10} "
                  f"{cell('calculator_speedup', 2):>6}")  # fmt: skip
            if row.get("mlip_engine_error"):
                print(f"       mlip engine: {row['mlip_engine_error']}")
    write_record(args.output, record)


if __name__ == "__main__":
    main()
