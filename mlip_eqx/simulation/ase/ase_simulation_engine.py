"""ASESimulationEngine: MD and minimisation with ASE's integrators and
optimisers, on the force field's ASE calculator."""

import logging
import time

import ase
import numpy as np
from ase import units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS, FIRE

from mlip_eqx.models.force_field import ForceField
from mlip_eqx.simulation.ase.mlip_ase_calculator import MLIPForceFieldASECalculator
from mlip_eqx.simulation.configs.ase_config import ASESimulationConfig
from mlip_eqx.simulation.enums import MDIntegrator, StructureOptimizationMethod
from mlip_eqx.simulation.exceptions import check_not_exploded
from mlip_eqx.simulation.simulation_engine import SimulationEngine
from mlip_eqx.simulation.state import SimulationState, append_snapshots
from mlip_eqx.simulation.temperature_scheduling import get_temperature_schedule

logger = logging.getLogger("mlip_eqx")

_OPTIMIZERS = {
    StructureOptimizationMethod.BFGS: BFGS,
    StructureOptimizationMethod.FIRE: FIRE,
}


class ASESimulationEngine(SimulationEngine):
    """MD (ASE's VelocityVerlet, Langevin) or minimisation (BFGS, FIRE) of one
    structure with :class:`MLIPForceFieldASECalculator`.

    The settings mean what they mean for the JAX-MD engine: time step in fs,
    temperature in K, Langevin friction in 1/fs (without fixing the centre of
    mass, as JAX-MD), initial velocities from the atoms if non-zero, else
    Maxwell-Boltzmann ones at the initial temperature with zero total momentum.
    Any periodicity and cell width works. The engine simulates a copy of the
    atoms; a temperature that becomes NaN or exceeds 1e6 K stops the run with
    :class:`~mlip_eqx.simulation.exceptions.SimulationExplodedError`.
    """

    Config = ASESimulationConfig

    def __init__(
        self, atoms: ase.Atoms, force_field: ForceField, config: ASESimulationConfig
    ) -> None:
        """Constructor.

        Args:
            atoms: The structure (not changed by the simulation).
            force_field: The force field.
            config: The settings.

        Raises:
            TypeError: ``atoms`` is a list (batches need the JAX-MD engine).
            ValueError: ``atoms`` is empty.
            UnseenElementsError: An element is not known to the model.
        """
        if not isinstance(atoms, ase.Atoms):
            raise TypeError(
                "ASESimulationEngine simulates one ase.Atoms, got "
                f"{type(atoms).__name__}; batches need the JAX-MD engine."
            )
        if len(atoms) == 0:
            raise ValueError("ASESimulationEngine: no atoms to simulate.")
        self.config = config
        self.state = SimulationState()
        self.loggers = []
        self.atoms = atoms.copy()
        self.atoms.calc = MLIPForceFieldASECalculator(
            self.atoms, config.edge_capacity_multiplier, force_field
        )
        self._schedule = get_temperature_schedule(config) if config.is_md else None
        self._pending: list[dict[str, np.ndarray]] = []
        self._seconds = 0.0

    def run(self) -> None:
        """Runs the simulation (a minimisation stops early once converged).

        Raises:
            SimulationExplodedError: A temperature became NaN or above 1e6 K, or
                an energy not finite.
        """
        config = self.config
        dynamics = self._dynamics()
        dynamics.attach(self._take_snapshot, interval=config.snapshot_interval)
        log_interval = config.log_interval or config.snapshot_interval
        dynamics.attach(self._flush, interval=log_interval)
        if config.is_md and config.md_integrator == MDIntegrator.NVT_LANGEVIN:
            dynamics.attach(
                lambda: dynamics.set_temperature(
                    temperature_K=float(self._schedule(dynamics.nsteps))
                )
            )
        self._dynamics = dynamics
        self._start = time.perf_counter()
        if config.is_md:
            iterator = dynamics.irun(steps=config.num_steps)
        else:
            threshold = config.max_force_convergence_threshold
            iterator = dynamics.irun(fmax=threshold or 0.0, steps=config.num_steps)
        for _ in iterator:
            pass
        if self._last_recorded_step() != dynamics.nsteps:  # converged in between
            self._take_snapshot()
        self._flush()

    def _last_recorded_step(self) -> int:
        """The step of the latest snapshot, pending or in the state."""
        if self._pending:
            return int(self._pending[-1]["snapshot_steps"][-1])
        return int(self.state.snapshot_steps[-1])

    def _dynamics(self):
        """ASE's integrator or optimiser of the configured simulation."""
        config = self.config
        if not config.is_md:
            return _OPTIMIZERS[config.minimization_method](self.atoms, logfile=None)
        velocities = self.atoms.get_velocities()
        rng = np.random.default_rng(config.random_seed)
        temperature = float(self._schedule(0))
        if not np.any(velocities != 0.0):
            thermalize_momenta(self.atoms, temperature, rng=rng)
            Stationary(self.atoms)
        timestep = config.timestep_fs * units.fs
        if config.md_integrator == MDIntegrator.NVE_VELOCITY_VERLET:
            return VelocityVerlet(self.atoms, timestep=timestep)
        return Langevin(
            self.atoms,
            timestep=timestep,
            temperature_K=temperature,
            friction=config.friction / units.fs,
            fixcm=False,
            rng=rng,
        )

    def _take_snapshot(self) -> None:
        """Keeps the current state as a pending snapshot."""
        atoms = self.atoms
        snapshot = {
            "positions": atoms.get_positions()[None],
            "forces": atoms.get_forces()[None],
            "potential_energy": np.array([atoms.get_potential_energy()]),
            "cell": atoms.cell.array.copy()[None],
            "snapshot_steps": np.array([self._dynamics.nsteps]),
        }
        if self.config.is_md:
            snapshot["velocities"] = atoms.get_velocities()[None]
            snapshot["kinetic_energy"] = np.array([atoms.get_kinetic_energy()])
            snapshot["temperature"] = np.array([atoms.get_temperature()])
        self._pending.append(snapshot)

    def _flush(self) -> None:
        """Adds the pending snapshots to the state, checks them and calls the
        loggers."""
        if not self._pending:
            return
        pending = {
            name: np.concatenate([s[name] for s in self._pending])
            for name in self._pending[0]
        }
        self._pending = []
        now = time.perf_counter()
        self._seconds += now - self._start
        fields = append_snapshots(
            None if self.state.atomic_numbers is None else self.state, pending
        )
        self.state = SimulationState(
            **fields,
            atomic_numbers=self.atoms.numbers.copy(),
            pbc=np.asarray(self.atoms.pbc, dtype=bool),
            step=int(pending["snapshot_steps"][-1]),
            compute_time_seconds=self._seconds,
        )
        check_not_exploded(
            pending.get("temperature", np.zeros(0)),
            pending["potential_energy"],
            pending["snapshot_steps"],
            "the structure",
        )
        self._call_loggers()
        self._start = time.perf_counter()
