"""MD step time of a JAX-MD engine and call time of an ASE calculator, for
mlip_eqx or mlip 0.2.5 (their simulation APIs match); run in the library's own
interpreter (for ``md_vs_mlip``)."""

import importlib
import importlib.metadata
import json
import statistics
import time

from benchmarks.harness import median_seconds

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
    import numpy as np

    jax_md = importlib.import_module(f"{package}.simulation.jax_md")
    enums = importlib.import_module(f"{package}.simulation.enums")
    steps = STEPS_PER_EPISODE.get(len(atoms), 10)
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
    if hasattr(engine, "num_neighbor_list_builds"):  # mlip_eqx's engine
        result["neighbor_list_builds"] = engine.num_neighbor_list_builds
    return result


def time_calculator(package: str, force_field, atoms, calls: int) -> dict:
    """Milliseconds per energy + forces call of ``package``'s ASE calculator,
    each after moving one atom by 0.01 Å (so that nothing is cached)."""
    calculator_module = importlib.import_module(
        f"{package}.simulation.ase.mlip_ase_calculator"
    )
    atoms = atoms.copy()
    atoms.calc = calculator_module.MLIPForceFieldASECalculator(atoms, 1.25, force_field)
    return calculator_ms(atoms, calls)


def calculator_ms(atoms, calls: int) -> dict:
    """Milliseconds per energy + forces call of the calculator attached to
    ``atoms``, each after moving one atom by 0.01 Å (so that nothing is
    cached), median over ``calls`` calls after a warm-up call."""

    def call() -> None:
        positions = atoms.get_positions()
        positions[0, 0] += 0.01
        atoms.set_positions(positions)
        atoms.get_potential_energy()
        atoms.get_forces()

    seconds, _ = median_seconds(call, calls, warmup=1)
    return {"ms_per_call": 1e3 * seconds}


def time_library(package: str, model: str, sizes: list[int], calls: int) -> dict:
    """Times ``package``'s engine and calculator on every size."""
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
    return results
