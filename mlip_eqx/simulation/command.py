"""What ``mlip-eqx simulate`` runs: MD or a minimisation of one structure with a
trained model, its trajectory as extxyz and a plot of energy and temperature."""

import logging
import os
from pathlib import Path
from typing import Literal

import ase
import ase.io

from mlip_eqx.models.inference_context import InferenceContext
from mlip_eqx.models.model_io import load_model_from_zip
from mlip_eqx.simulation.enums import MDIntegrator, SimulationType
from mlip_eqx.simulation.state import SimulationState
from mlip_eqx.simulation.trajectory import write_trajectory

logger = logging.getLogger("mlip_eqx")


def read_structure(path: str | os.PathLike, frame: int = 0) -> ase.Atoms:
    """One frame of a structure file that ASE reads (e.g. extxyz).

    Raises:
        FileNotFoundError: There is no file at ``path``.
        ValueError: The file cannot be read or has no such frame (naming both).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such structure file.")
    try:
        return ase.io.read(path, index=frame)
    except (IndexError, StopIteration) as error:
        raise ValueError(f"{path}: there is no frame {frame}.") from error
    except Exception as error:  # ASE raises many kinds for unreadable files
        raise ValueError(f"{path}: cannot read a structure: {error}") from error


def simulate(
    model_path: str | os.PathLike,
    structure_path: str | os.PathLike,
    output_path: str | os.PathLike,
    engine: Literal["jax-md", "ase"] = "jax-md",
    num_steps: int = 1000,
    temperature_kelvin: float = 300.0,
    timestep_fs: float = 1.0,
    minimise: bool = False,
    integrator: Literal["nvt", "nve"] = "nvt",
    snapshot_interval: int = 10,
    friction: float = 0.01,
    seed: int = 42,
    plot: bool = True,
    head: str | None = None,
) -> SimulationState:
    """Runs MD (or a minimisation) of the first frame of ``structure_path``.

    Args:
        model_path: The model zip (``model.zip`` of a training run).
        structure_path: A structure file ASE reads; its first frame is simulated.
        output_path: The trajectory (extxyz); with ``plot``, a PNG of energy and
            temperature against time is written next to it (same name, ``.png``).
        engine: "jax-md" (jitted episodes) or "ase" (ASE's dynamics with the
            calculator).
        num_steps: MD steps (for a minimisation: the most steps).
        temperature_kelvin: Thermostat target and initial temperature, in K.
        timestep_fs: Time step in fs.
        minimise: Minimise the energy (FIRE for JAX-MD, BFGS for ASE) until the
            largest force is below 0.01 eV/Å, instead of MD.
        integrator: "nvt" (Langevin) or "nve" (velocity Verlet).
        snapshot_interval: Steps between recorded snapshots (must divide
            ``num_steps``).
        friction: Langevin friction in 1/fs.
        seed: Seed of the initial velocities and of the thermostat.
        plot: Write the PNG.
        head: The data set (readout head and E0) of a multi-head model to
            simulate with, by name; None: data set 0.

    Returns:
        The simulation's state (all snapshots).
    """
    force_field = load_model_from_zip(None, model_path)
    if head is not None:
        context = InferenceContext(dataset_name=head)
        force_field = force_field.replace_inference_context(context)
    atoms = read_structure(structure_path)
    settings = dict(
        simulation_type=SimulationType.MINIMIZATION if minimise else SimulationType.MD,
        md_integrator=(
            MDIntegrator.NVE_VELOCITY_VERLET
            if integrator == "nve"
            else MDIntegrator.NVT_LANGEVIN
        ),
        num_steps=num_steps,
        snapshot_interval=snapshot_interval,
        timestep_fs=timestep_fs,
        temperature_kelvin=None if minimise else temperature_kelvin,
        friction=friction,
        random_seed=seed,
        max_force_convergence_threshold=0.01 if minimise else None,
    )
    if engine == "jax-md":
        from mlip_eqx.simulation.jax_md import JaxMDSimulationEngine

        runner = JaxMDSimulationEngine(
            atoms, force_field, JaxMDSimulationEngine.Config(**settings)
        )
    else:
        from mlip_eqx.simulation.ase import ASESimulationEngine

        runner = ASESimulationEngine(
            atoms, force_field, ASESimulationEngine.Config(**settings)
        )
    runner.attach_logger(_progress_logger(num_steps))
    runner.run()
    state = runner.state
    write_trajectory(state, output_path)
    written = [str(output_path)]
    if plot:
        from mlip_eqx.plotting import plot_simulation

        plot_path = Path(output_path).with_suffix(".png")
        plot_simulation(state, timestep_fs, plot_path)
        written.append(str(plot_path))
    logger.info(
        "Done: %d steps in %.1f s (%.2f ms per step, compilation included). "
        "Written: %s.",
        state.step,
        state.compute_time_seconds,
        1e3 * state.compute_time_seconds / max(state.step, 1),
        ", ".join(written),
    )
    return state


def _progress_logger(num_steps: int):
    """A simulation logger that reports the last snapshot in a log line."""

    def log(state: SimulationState) -> None:
        parts = [f"step {state.step}/{num_steps}"]
        parts.append(f"E_pot {float(state.potential_energy[-1]):.4f} eV")
        if state.temperature is not None:
            parts.append(f"T {float(state.temperature[-1]):.1f} K")
        forces = state.forces[-1]
        parts.append(f"max |F| {float((forces**2).sum(axis=1).max() ** 0.5):.4f} eV/Å")
        logger.info("%s", ", ".join(parts))

    return log
