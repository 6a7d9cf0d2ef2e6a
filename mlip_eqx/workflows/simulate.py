"""What ``mlip-eqx simulate`` runs: MD or a minimisation of one structure with a
trained model, its trajectory as extxyz and a plot of energy and temperature."""

import contextlib
import dataclasses
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import ase
import ase.io

from mlip_eqx.inference.atoms_graphs import graph_from_atoms
from mlip_eqx.models.model_io import load_model_from_zip, use_saved_dtype
from mlip_eqx.plotting import plot_simulation
from mlip_eqx.simulation.ase.ase_simulation_engine import ASESimulationEngine
from mlip_eqx.simulation.configs.simulation_config import SimulationConfig
from mlip_eqx.simulation.enums import MDIntegrator, SimulationType
from mlip_eqx.simulation.exceptions import (
    NeighborListSkinError,
    SimulationExplodedError,
)
from mlip_eqx.simulation.state import SimulationState
from mlip_eqx.simulation.trajectory import TrajectoryWriter, trajectory_format
from mlip_eqx.utils.config import Config, PositiveFloat, PositiveInt
from mlip_eqx.workflows.evaluate import model_zip, with_head

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


def _shared_default(name: str) -> object:
    """The default of a :class:`SimulationConfig` field (their one home)."""
    return next(
        f.default for f in dataclasses.fields(SimulationConfig) if f.name == name
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimulateSettings(Config):
    """Settings of ``mlip-eqx simulate`` (units: K, fs, eV/Å).

    Attributes:
        model: The model zip, or a training run's output directory (its
            ``model.zip``).
        structure: A structure file ASE reads (e.g. extxyz); its first frame is
            simulated.
        output: The trajectory: extxyz (``.xyz``, ``.extxyz``) or ASE's
            trajectory (``.traj``), written as the snapshots are recorded (after
            each episode of at most 1,000 steps), so that an interrupted or
            exploded run keeps them; with ``plots``, a PNG of energy and
            temperature against time is written next to it (same name, ``.png``).
            Never the structure file.
        engine: "jax-md" (jitted episodes) or "ase" (ASE's dynamics with the
            calculator).
        steps: MD steps (for a minimisation: the most steps).
        temperature: Thermostat target and initial temperature, in K.
        timestep: Time step in fs.
        integrator: "nvt" (Langevin) or "nve" (velocity Verlet).
        friction: Langevin friction in 1/fs.
        snapshot_interval: Steps between recorded snapshots (must divide
            ``steps``).
        seed: Seed of the initial velocities and of the thermostat.
        minimise: Minimise the energy (FIRE for JAX-MD, BFGS for ASE) until the
            largest force is below ``max_force`` instead of MD.
        max_force: Convergence threshold of a minimisation, in eV/Å.
        head: The data set (readout head and E0) of a multi-head model to
            simulate with, by name; None: data set 0.
        plots: Write the energy and temperature plot.
    """

    model: str
    structure: str
    output: str = "trajectory.xyz"
    engine: Literal["jax-md", "ase"] = "jax-md"
    steps: PositiveInt = 1000
    temperature: PositiveFloat = _shared_default("temperature_kelvin")
    timestep: PositiveFloat = _shared_default("timestep_fs")
    integrator: Literal["nvt", "nve"] = "nvt"
    friction: PositiveFloat = _shared_default("friction")
    snapshot_interval: PositiveInt = 10
    seed: int = _shared_default("random_seed")
    minimise: bool = False
    max_force: PositiveFloat = 0.01
    head: str | None = None
    plots: bool = True

    def simulation_fields(self) -> dict[str, object]:
        """The engine-independent :class:`SimulationConfig` fields."""
        return dict(
            simulation_type=(
                SimulationType.MINIMIZATION if self.minimise else SimulationType.MD
            ),
            md_integrator=(
                MDIntegrator.NVE_VELOCITY_VERLET
                if self.integrator == "nve"
                else MDIntegrator.NVT_LANGEVIN
            ),
            num_steps=self.steps,
            snapshot_interval=self.snapshot_interval,
            timestep_fs=self.timestep,
            temperature_kelvin=None if self.minimise else self.temperature,
            friction=self.friction,
            random_seed=self.seed,
            max_force_convergence_threshold=(self.max_force if self.minimise else None),
        )


def simulate(settings: SimulateSettings) -> SimulationState:
    """Runs MD (or a minimisation) of the first frame of ``settings.structure``,
    writes the trajectory and (with ``settings.plots``) the plot. The job runs
    in the zip's dtype (a float64 zip turns ``jax_enable_x64`` on for the whole
    process).

    Returns:
        The simulation's state (all snapshots).

    Raises:
        ImportError: The JAX-MD engine without jax-md installed (``[md]`` extra).
        ValueError: An output that is not a trajectory file, or that would
            replace the structure file (checked before any work).
        FileNotFoundError: The output's directory does not exist.
        SimulationExplodedError: The temperature ran away (the snapshots up to
            then are in the output).
        NeighborListSkinError: An atom moved too far in one step (likewise).
        KeyboardInterrupt: On SIGINT or SIGTERM (likewise).
    """
    _check_outputs(settings)
    model = model_zip(settings.model)
    use_saved_dtype(model)  # a float64 zip: jax_enable_x64 on
    force_field = with_head(load_model_from_zip(None, model), settings.head)
    atoms = read_structure(settings.structure)
    graph_from_atoms(atoms, force_field, settings.structure)  # elements, overlaps
    fields = settings.simulation_fields()
    if settings.engine == "jax-md":
        # jax-md is an optional extra ([md]): imported only when asked for.
        from mlip_eqx.simulation.jax_md import JaxMDSimulationEngine

        config = JaxMDSimulationEngine.Config(**fields)
        runner = JaxMDSimulationEngine(atoms, force_field, config)
    else:
        runner = ASESimulationEngine(
            atoms, force_field, ASESimulationEngine.Config(**fields)
        )
    runner.attach_logger(_progress_logger(settings.steps))
    writer = TrajectoryWriter(settings.output)
    runner.attach_logger(writer)
    try:
        with _sigterm_as_interrupt():
            runner.run()
    except (SimulationExplodedError, NeighborListSkinError, KeyboardInterrupt) as error:
        writer(runner.state)  # the snapshots recorded since the last logger call
        what = "interrupted" if isinstance(error, KeyboardInterrupt) else "stopped"
        logger.error(
            "The simulation %s at step %d; its %d snapshots are in %s.",
            what,
            runner.state.step,
            writer.written,
            settings.output,
        )
        raise
    state = runner.state
    written = [settings.output]
    if settings.plots:
        plot_path = Path(settings.output).with_suffix(".png")
        plot_simulation(state, settings.timestep, plot_path)
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


def _check_outputs(settings: SimulateSettings) -> None:
    """Refuses, before any work, outputs that cannot be written or that would
    replace an input (the structure, or the trajectory by the plot)."""
    output = Path(settings.output)
    trajectory_format(output)
    if not output.parent.is_dir():
        raise FileNotFoundError(
            f"{output}: its directory {output.parent} does not exist."
        )
    inputs = [Path(settings.structure), Path(settings.model)]
    if any(output.resolve() == path.resolve() for path in inputs):
        raise ValueError(f"{output}: the output would replace an input file.")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the block (as SIGINT does), so that
    the run stops as if interrupted; only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
