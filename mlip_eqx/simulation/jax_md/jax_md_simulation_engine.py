"""JaxMDSimulationEngine: MD and minimisation in jitted episodes with JAX-MD."""

import functools
import logging
import math
import time

import ase
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from ase import units
from jax_md import minimize, simulate

from mlip_eqx.data.graph_creation import species_table
from mlip_eqx.inference.atoms_graphs import check_known_elements
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.simulation.configs.jax_md_config import JaxMDSimulationConfig
from mlip_eqx.simulation.enums import MDIntegrator
from mlip_eqx.simulation.exceptions import check_not_exploded
from mlip_eqx.simulation.jax_md import neighbor_lists
from mlip_eqx.simulation.jax_md.graph_creation import (
    SystemsLayout,
    graph_from_neighbor_lists,
)
from mlip_eqx.simulation.simulation_engine import SimulationEngine
from mlip_eqx.simulation.state import SimulationState, append_snapshots
from mlip_eqx.simulation.temperature_scheduling import get_temperature_schedule
from mlip_eqx.utils.compiler_options import compiler_options
from mlip_eqx.utils.progress import track

logger = logging.getLogger("mlip_eqx")

# FIRE's settings (Bitzek et al. 2006, as the original library): the largest
# step is this many times timestep_fs.
FIRE_MAX_TIMESTEP_RATIO = 4.0
CAPACITY_GROWTH = 1.25


class NeighborListSkinError(RuntimeError):
    """An atom moved too far in one step for the neighbour lists' skin."""


class JaxMDSimulationEngine(SimulationEngine):
    """MD (NVE velocity Verlet, NVT Langevin) or FIRE minimisation with JAX-MD.

    A list of structures runs as one batch: their atoms share one jitted loop
    and one force-field call per step, but not their dynamics (each atom's
    integration and thermostat noise are its own; the structures only share
    FIRE's adaptive step size and mixing, which use the whole batch's power
    F·v). Structures are fully periodic (any triclinic cell wider than twice
    cutoff + skin) or non-periodic; positions are not wrapped into the cell.

    The run is split into episodes of jitted steps. After each, the neighbour
    lists are checked: if one overflowed, it is reallocated with at least 1.25
    times its capacity and the episode is rerun. Then the temperature is checked
    (NaN or above 1e6 K stops the run with
    :class:`~mlip_eqx.simulation.exceptions.SimulationExplodedError`), the
    snapshots are added to ``self.state`` and the loggers are called.

    Units are ASE's: the time step in fs, temperatures in K, the friction in
    1/fs, masses in u (``atoms.get_masses()``); initial velocities are those of
    the atoms when every structure has non-zero ones, otherwise drawn from the
    Maxwell-Boltzmann distribution at the initial temperature (zero total
    momentum per structure).
    """

    Config = JaxMDSimulationConfig

    def __init__(
        self,
        atoms: ase.Atoms | list[ase.Atoms],
        force_field: ForceField,
        config: JaxMDSimulationConfig,
    ) -> None:
        """Constructor: checks the structures and allocates the neighbour lists.

        Args:
            atoms: A structure, or a list of structures to simulate as a batch.
            force_field: The force field (float64 if x64 is enabled).
            config: The settings.

        Raises:
            ValueError: No structure, an empty one, a partly periodic one or a
                cell narrower than 2 (cutoff + skin).
            UnseenElementsError: An element is not known to the model.
        """
        self._is_batched = isinstance(atoms, list)
        atoms_list = list(atoms) if self._is_batched else [atoms]
        if not atoms_list or any(len(a) == 0 for a in atoms_list):
            raise ValueError("JaxMDSimulationEngine: no atoms to simulate.")
        self.config = config
        self.force_field = force_field
        self.state = SimulationState()
        self.loggers = []
        self._atoms = [a.copy() for a in atoms_list]
        sources = [
            f"structure {k}" if self._is_batched else "the structure"
            for k in range(len(atoms_list))
        ]
        skin = config.neighbor_list_skin_angstrom
        cutoff = force_field.cutoff_distance
        cells = []
        for a, source in zip(self._atoms, sources):
            check_known_elements(a.numbers, force_field.allowed_atomic_numbers, source)
            cells.append(neighbor_lists.checked_cell(a, cutoff, skin, source))
        table = species_table(force_field.allowed_atomic_numbers)
        self._layout = SystemsLayout(
            species=np.concatenate([table[a.numbers] for a in self._atoms]),
            sizes=tuple(len(a) for a in self._atoms),
            cells=tuple(cells),
            cutoff=cutoff,
        )
        self._dtype = force_field.dtype
        positions = jnp.asarray(
            np.concatenate([a.positions for a in self._atoms]), self._dtype
        )
        self._neighbor_fns = [
            neighbor_lists.neighbor_list_fns(
                cell, cutoff, skin, config.edge_capacity_multiplier
            )
            for cell in cells
        ]
        self._neighbors = tuple(
            neighbor_lists.allocate(fns, positions[part])
            for fns, part in zip(self._neighbor_fns, self._layout.slices())
        )
        self._params, static = force_field.partition()
        self._integrator = _integrator(config, static, self._layout)
        self._schedule = get_temperature_schedule(config) if config.is_md else None
        options = compiler_options(jax.default_backend())
        self._initialise = jax.jit(self._initial_state, compiler_options=options)
        self._episode = jax.jit(self._run_episode, compiler_options=options)
        self._snapshot_fn = functools.partial(_snapshot, static, self._layout, config)
        self._md_state = None

    def run(self) -> None:
        """Runs all episodes (a minimisation stops early once converged).

        Raises:
            SimulationExplodedError: A temperature became NaN or above 1e6 K, or
                an energy not finite; ``self.state`` holds the snapshots up to
                the episode where it happened.
            NeighborListSkinError: An atom moved more than a quarter of the
                skin in one step.
        """
        config = self.config
        start = time.perf_counter()
        md_state, first = jax.device_get(
            self._initialise(self._params, self._neighbors)
        )
        self._md_state = md_state
        self._record(first, np.zeros(1, np.int64), time.perf_counter() - start)
        steps = config.steps_per_episode
        num_episodes = config.num_steps // steps
        for episode in track(range(num_episodes), "JAX-MD simulation"):
            start = time.perf_counter()
            first_step = episode * steps
            while True:
                new_state, neighbors, max_move, snapshots = self._episode(
                    self._params, self._md_state, self._neighbors, first_step
                )
                if not any(bool(n.did_buffer_overflow) for n in neighbors):
                    break
                self._reallocate(new_state.position, neighbors, episode)
            self._md_state = new_state
            self._neighbors = neighbors
            snapshot_steps = first_step + config.snapshot_interval * np.arange(
                1, steps // config.snapshot_interval + 1
            )
            self._record(
                jax.device_get(snapshots), snapshot_steps, time.perf_counter() - start
            )
            self._check_moves(float(max_move), first_step)
            if self._converged():
                logger.info("Minimisation converged after %d steps.", self.state.step)
                break

    def _initial_state(self, params, neighbors):
        """The integrator's state at step 0 and its snapshot."""
        init, _ = self._integrator
        config = self.config
        positions = jnp.asarray(
            np.concatenate([a.positions for a in self._atoms]), self._dtype
        )
        masses = jnp.asarray(
            np.concatenate([a.get_masses() for a in self._atoms]), self._dtype
        )
        kwargs = {"neighbors": neighbors, "params": params}
        key = jax.random.PRNGKey(config.random_seed)
        if not config.is_md:
            state = init(positions, mass=masses, **kwargs)
        else:
            key, momenta_key = jax.random.split(key)
            temperature = self._schedule(0)
            momenta = self._initial_momenta(momenta_key, masses, temperature)
            if config.md_integrator == MDIntegrator.NVE_VELOCITY_VERLET:
                kt = units.kB * temperature
                state = init(key, positions, kt, mass=masses, momenta=momenta, **kwargs)
            else:
                state = init(key, positions, mass=masses, momenta=momenta, **kwargs)
        snapshot = self._snapshot_fn(params, state, neighbors)
        return state, jax.tree.map(lambda value: value[None], snapshot)

    def _initial_momenta(self, key, masses, temperature):
        """Momenta in u Å/(ASE time) of the atoms' velocities if every
        structure has non-zero ones, else Maxwell-Boltzmann ones."""
        velocities = [a.get_velocities() for a in self._atoms]
        if all(np.any(v != 0.0) for v in velocities):
            return masses[:, None] * jnp.asarray(np.concatenate(velocities))
        momenta = jax.random.normal(key, (len(masses), 3), self._dtype) * jnp.sqrt(
            masses[:, None] * units.kB * temperature
        )
        parts = [
            p - jnp.mean(p, axis=0) if p.shape[0] > 1 else p
            for p in (momenta[part] for part in self._layout.slices())
        ]
        return jnp.concatenate(parts)

    def _run_episode(self, params, md_state, neighbors, first_step):
        """``steps_per_episode`` steps; returns the final integrator state and
        neighbour lists, the largest move of an atom in one step (Å) and the
        snapshots."""
        _, apply = self._integrator
        config = self.config
        interval = config.snapshot_interval
        is_nvt = config.is_md and config.md_integrator == MDIntegrator.NVT_LANGEVIN
        parts = self._layout.slices()

        def one_step(step, carry):
            state, neighbors, max_move = carry
            neighbors = tuple(
                n.update(state.position[p]) for n, p in zip(neighbors, parts)
            )
            kwargs = {"neighbors": neighbors, "params": params}
            if is_nvt:
                kwargs["kT"] = units.kB * self._schedule(first_step + step)
            new_state = apply(state, **kwargs)
            move = jnp.max(
                jnp.linalg.norm(new_state.position - state.position, axis=-1)
            )
            return new_state, neighbors, jnp.maximum(max_move, move)

        def snapshot_block(carry, block):
            carry = jax.lax.fori_loop(
                block * interval, (block + 1) * interval, one_step, carry
            )
            state, neighbors, _ = carry
            return carry, self._snapshot_fn(params, state, neighbors)

        carry = (md_state, neighbors, jnp.zeros((), self._dtype))
        (state, neighbors, max_move), snapshots = jax.lax.scan(
            snapshot_block, carry, jnp.arange(config.steps_per_episode // interval)
        )
        return state, neighbors, max_move, snapshots

    def _reallocate(self, positions, overflowed, episode: int) -> None:
        """New neighbour lists with room for 1.25 times as many pairs (at least)
        for every list that overflowed."""
        neighbors = list(self._neighbors)
        for k, (old, new) in enumerate(zip(self._neighbors, overflowed)):
            if not bool(new.did_buffer_overflow):
                continue
            old_capacity = neighbor_lists.capacity(old)
            wanted = max(math.ceil(CAPACITY_GROWTH * old_capacity), old_capacity + 2)
            part = self._layout.slices()[k]
            neighbors[k] = neighbor_lists.allocate(
                self._neighbor_fns[k], positions[part], wanted
            )
            logger.info(
                "JAX-MD: neighbour list %d overflowed in episode %d; capacity "
                "%d -> %d pairs, rerunning the episode (recompiling).",
                k,
                episode + 1,
                old_capacity,
                neighbor_lists.capacity(neighbors[k]),
            )
        self._neighbors = tuple(neighbors)

    def _record(self, snapshots, snapshot_steps, seconds: float) -> None:
        """Adds the snapshots to the state, checks them, calls the loggers."""
        systems = []
        old_systems = [
            None if self.state.atomic_numbers is None else self.state.system(k)
            for k in range(len(self._atoms))
        ]
        for k, (part, atoms) in enumerate(zip(self._layout.slices(), self._atoms)):
            fields = {
                name: np.asarray(value[:, part] if value.ndim > 2 else value[:, k])
                for name, value in snapshots.items()
            }
            num = len(snapshot_steps)
            fields["cell"] = np.broadcast_to(atoms.cell.array, (num, 3, 3)).copy()
            fields["snapshot_steps"] = snapshot_steps
            systems.append(append_snapshots(old_systems[k], fields))
        steps = int(snapshot_steps[-1])
        self.state = _joined_state(
            systems,
            self._atoms,
            self._is_batched,
            steps,
            self.state.compute_time_seconds + seconds,
        )
        for k, fields in enumerate(systems):
            new = slice(-len(snapshot_steps), None)
            check_not_exploded(
                fields.get("temperature", np.zeros(0))[new],
                fields["potential_energy"][new],
                fields["snapshot_steps"][new],
                f"structure {k}" if self._is_batched else "the structure",
            )
        self._call_loggers()

    def _check_moves(self, max_move: float, first_step: int) -> None:
        """Raises if an atom moved farther in one step than the skin allows."""
        limit = self.config.neighbor_list_skin_angstrom / 4
        if max_move > limit:
            raise NeighborListSkinError(
                f"JAX-MD: an atom moved {max_move:.3f} Å in one step (steps "
                f"{first_step}-{self.state.step}), more than a quarter of "
                f"neighbor_list_skin_angstrom ({limit:.3f} Å): the neighbour lists "
                "may miss pairs. Lower timestep_fs or raise the skin."
            )

    def _converged(self) -> bool:
        """Whether a minimisation's largest force is below the threshold."""
        threshold = self.config.max_force_convergence_threshold
        if self.config.is_md or threshold is None:
            return False
        forces = self.state.forces if self._is_batched else [self.state.forces]
        return all(np.linalg.norm(f[-1], axis=-1).max() < threshold for f in forces)


def _integrator(config: JaxMDSimulationConfig, static: ForceField, layout):
    """JAX-MD's (init, apply) functions of the configured simulation, with the
    total energy (eV) of the batch as a function of positions, neighbour lists
    and parameters (keyword arguments ``neighbors`` and ``params``)."""

    def total_energy(positions, neighbors, params, **unused):
        return jnp.sum(_energies(static, layout, params, positions, neighbors))

    def shift(positions, displacement, **unused):
        return positions + displacement

    timestep = config.timestep_fs * units.fs
    if not config.is_md:
        return minimize.fire_descent(
            total_energy,
            shift,
            dt_start=timestep,
            dt_max=timestep * FIRE_MAX_TIMESTEP_RATIO,
        )
    if config.md_integrator == MDIntegrator.NVE_VELOCITY_VERLET:
        return simulate.nve(total_energy, shift, dt=timestep)
    return simulate.nvt_langevin(
        total_energy,
        shift,
        dt=timestep,
        kT=units.kB * config.temperature_kelvin,
        gamma=config.friction / units.fs,
    )


def _energies(static, layout, params, positions, neighbors):
    """Potential energy in eV of every structure."""
    graph = graph_from_neighbor_lists(positions, [n.idx for n in neighbors], layout)
    energies = eqx.combine(params, static).energies(graph)
    return energies[: len(layout.sizes)]


def _snapshot(static, layout, config, params, state, neighbors) -> dict:
    """What a snapshot records of the integrator state (flat over all atoms;
    per-structure quantities as [num_structures] arrays)."""
    snapshot = {
        "positions": state.position,
        "forces": state.force,
        "potential_energy": _energies(
            static, layout, params, state.position, neighbors
        ),
    }
    if config.is_md:
        masses = state.mass.reshape(-1)
        atom_kinetic = jnp.sum(state.momentum**2, axis=-1) / (2.0 * masses)
        kinetic = jnp.stack([jnp.sum(atom_kinetic[part]) for part in layout.slices()])
        sizes = jnp.asarray(layout.sizes, kinetic.dtype)
        snapshot["velocities"] = state.momentum / masses[:, None]
        snapshot["kinetic_energy"] = kinetic
        snapshot["temperature"] = 2.0 * kinetic / (3.0 * sizes * units.kB)
    return snapshot


def _joined_state(systems, atoms_list, is_batched, step, seconds) -> SimulationState:
    """The SimulationState of per-structure snapshot fields (lists if batched)."""
    per_system = [
        {
            **fields,
            "atomic_numbers": atoms.numbers.copy(),
            "pbc": np.asarray(atoms.pbc, dtype=bool),
        }
        for fields, atoms in zip(systems, atoms_list)
    ]
    names = list(per_system[0].keys())
    if is_batched:
        values = {name: [fields[name] for fields in per_system] for name in names}
    else:
        values = per_system[0]
    return SimulationState(**values, step=step, compute_time_seconds=seconds)
