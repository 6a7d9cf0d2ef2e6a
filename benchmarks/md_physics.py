"""Physics of the simulation engines with the trained demo model (float64).

Usage:
    mlip-eqx train --output-dir runs/demo   # once: the demo model
    python -m benchmarks.md_physics [--model runs/demo/model.zip]
        [--nve-steps 2000] [--nvt-steps 2000]
        [--output benchmarks/results/md_physics.json]

Checks, each printed with its number and the goal from issue 13:
- NVE (JAX-MD, velocity Verlet, 1 fs) of the first 32-atom cell of the demo
  test set with 300 K Maxwell-Boltzmann velocities (seeded, zero momentum):
  the largest total-energy change per atom over ``--nve-steps`` steps
  (goal < 1 meV/atom);
- the same start in the ASE engine: the largest position difference from
  JAX-MD over the first 100 steps (goal < 1e-6 Å);
- NVT Langevin at 600 K (JAX-MD, friction 0.01/fs) of a 108-atom fcc cell of
  the demo elements (3x3x3 conventional cells, lattice 3.8 Å, random
  species): the mean temperature over the second half (goal within 5 %);
- FIRE minimisation (JAX-MD) of the demo cell rattled by 0.1 Å: the largest
  force at the end (goal < 0.01 eV/Å).
Writes JSON with every number.
"""

import time
from pathlib import Path

import ase.build
import ase.io
import jax
import numpy as np
from ase.md.velocitydistribution import Stationary, thermalize_momenta

jax.config.update("jax_enable_x64", True)

from benchmarks.harness import argument_parser, write_record  # noqa: E402
from mlip_eqx.data.demo import DEMO_ELEMENTS, get_demo_dataset  # noqa: E402
from mlip_eqx.models.model_io import load_model_from_zip  # noqa: E402
from mlip_eqx.simulation.ase import ASESimulationEngine  # noqa: E402
from mlip_eqx.simulation.enums import MDIntegrator, SimulationType  # noqa: E402
from mlip_eqx.simulation.jax_md import JaxMDSimulationEngine  # noqa: E402

NVE = MDIntegrator.NVE_VELOCITY_VERLET


def demo_cell() -> ase.Atoms:
    """The first structure of the demo test set, with 300 K velocities."""
    atoms = ase.io.read(get_demo_dataset().test_path, index=0)
    atoms.calc = None
    thermalize_momenta(atoms, 300.0, rng=np.random.default_rng(0))
    Stationary(atoms)
    return atoms


def nve_checks(force_field, steps: int) -> dict:
    atoms = demo_cell()
    config = dict(md_integrator=NVE, num_steps=steps, snapshot_interval=10)
    start = time.perf_counter()
    engine = JaxMDSimulationEngine(
        atoms, force_field, JaxMDSimulationEngine.Config(**config)
    )
    engine.run()
    seconds = time.perf_counter() - start
    state = engine.state
    total = state.potential_energy + state.kinetic_energy
    drift = float(np.abs(total - total[0]).max() / len(atoms))
    config.update(num_steps=100)
    reference = ASESimulationEngine(
        atoms, force_field, ASESimulationEngine.Config(**config)
    )
    reference.run()
    apart = float(np.abs(reference.state.positions - state.positions[:11]).max())
    return {
        "atoms": len(atoms),
        "steps": steps,
        "seconds": seconds,
        "neighbor_list_builds": engine.num_neighbor_list_builds,
        "mean_temperature_k": float(state.temperature.mean()),
        "max_energy_change_mev_per_atom": 1e3 * drift,
        "engines_max_position_difference_angstrom": apart,
    }


def nvt_check(force_field, steps: int) -> dict:
    atoms = ase.build.bulk("Cu", "fcc", a=3.8, cubic=True).repeat(3)
    rng = np.random.default_rng(1)
    atoms.set_chemical_symbols(rng.choice(DEMO_ELEMENTS, len(atoms)))
    target = 600.0
    engine = JaxMDSimulationEngine(
        atoms,
        force_field,
        JaxMDSimulationEngine.Config(
            temperature_kelvin=target, num_steps=steps, snapshot_interval=10
        ),
    )
    start = time.perf_counter()
    engine.run()
    temperatures = engine.state.temperature
    mean = float(temperatures[len(temperatures) // 2 :].mean())
    return {
        "atoms": len(atoms),
        "steps": steps,
        "seconds": time.perf_counter() - start,
        "target_k": target,
        "second_half_mean_k": mean,
        "relative_error": abs(mean - target) / target,
        "neighbor_list_builds": engine.num_neighbor_list_builds,
    }


def minimisation_check(force_field) -> dict:
    atoms = demo_cell()
    atoms.set_velocities(np.zeros((len(atoms), 3)))
    atoms.positions += np.random.default_rng(2).normal(0.0, 0.1, (len(atoms), 3))
    engine = JaxMDSimulationEngine(
        atoms,
        force_field,
        JaxMDSimulationEngine.Config(
            simulation_type=SimulationType.MINIMIZATION,
            temperature_kelvin=None,
            num_steps=2000,
            snapshot_interval=10,
            num_episodes=20,
            timestep_fs=1.0,
            max_force_convergence_threshold=0.01,
        ),
    )
    engine.run()
    largest = np.linalg.norm(engine.state.forces, axis=-1).max(axis=-1)
    return {
        "steps": engine.state.step,
        "initial_max_force_ev_per_angstrom": float(largest[0]),
        "final_max_force_ev_per_angstrom": float(largest[-1]),
    }


def main() -> None:
    parser = argument_parser(__doc__, "md_physics")
    parser.add_argument("--model", type=Path, default=Path("runs/demo/model.zip"))
    parser.add_argument("--nve-steps", type=int, default=2000)
    parser.add_argument("--nvt-steps", type=int, default=2000)
    args = parser.parse_args()
    if not args.model.exists():
        raise SystemExit(
            f"{args.model}: no such model; train the demo model first with "
            "mlip-eqx train --output-dir runs/demo"
        )
    force_field = load_model_from_zip(None, args.model)
    record = {"model": str(args.model), "dtype": str(force_field.dtype)}
    record["nve"] = nve_checks(force_field, args.nve_steps)
    print("NVE:", record["nve"], flush=True)
    record["nvt"] = nvt_check(force_field, args.nvt_steps)
    print("NVT:", record["nvt"], flush=True)
    record["minimisation"] = minimisation_check(force_field)
    print("FIRE:", record["minimisation"], flush=True)
    nve, nvt, fire = record["nve"], record["nvt"], record["minimisation"]
    print(
        f"\nNVE drift {nve['max_energy_change_mev_per_atom']:.4f} meV/atom over "
        f"{nve['steps']} steps (goal < 1); engines apart by "
        f"{nve['engines_max_position_difference_angstrom']:.2e} Å after 100 steps "
        f"(goal < 1e-6); NVT {nvt['second_half_mean_k']:.1f} K for "
        f"{nvt['target_k']:.0f} K ({100 * nvt['relative_error']:.1f} %, goal < 5 %); "
        f"FIRE max force {fire['final_max_force_ev_per_angstrom']:.4f} eV/Å after "
        f"{fire['steps']} steps (goal < 0.01)"
    )
    write_record(args.output, record)


if __name__ == "__main__":
    main()
