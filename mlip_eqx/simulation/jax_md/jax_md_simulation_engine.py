"""JaxMDSimulationEngine: MD and minimisation in jitted episodes with JAX-MD."""

import dataclasses
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
from mlip_eqx.data.readers.atoms_conversion import atoms_to_chemical_system
from mlip_eqx.inference.atoms_graphs import check_known_elements
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.simulation.configs.jax_md_config import JaxMDSimulationConfig
from mlip_eqx.simulation.enums import MDIntegrator
from mlip_eqx.simulation.exceptions import NeighborListSkinError, check_not_exploded
from mlip_eqx.simulation.jax_md.graph_creation import (
    count_edges,
    graph_from_verlet_list,
)
from mlip_eqx.simulation.jax_md.verlet_list import (
    SystemsLayout,
    build_verlet_list,
    find_pairs,
    grown,
    largest_move,
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


class JaxMDSimulationEngine(SimulationEngine):
    """MD (NVE velocity Verlet, NVT Langevin) or FIRE minimisation with JAX-MD.

    A list of structures runs as one batch: their atoms share one jitted loop
    and one force-field call per step, but not their dynamics (each atom's
    integration and thermostat noise are its own; the structures only share
    FIRE's adaptive step size and mixing, which use the whole batch's power
    F·v). A structure may be periodic along any of its lattice vectors (any
    triclinic cell, also one narrower than the cutoff) or not at all;
    positions are not wrapped into the cell.

    Neighbours come from a Verlet list of the pairs within cutoff + skin, built
    on the host with vesin's cell list (time linear in the atoms). The jitted
    loop checks after every step whether an atom has moved by half the skin
    since the list was built; if so, it stops before that step, the list is
    rebuilt and the loop goes on from there, so the trajectory is the one of an
    exact neighbour list. Every step, the listed pairs within the cutoff are
    compacted into a fixed number of edges (``edge_capacity_multiplier`` times
    those found at the start), so the model sees no pair beyond its cutoff. If
    more pairs come within the cutoff than there is room for, the stretch of
    steps is rerun with at least 1.25 times the room (a recompilation, logged).

    The run is split into episodes of jitted steps. After each, the temperature
    is checked (NaN or above 1e6 K stops the run with
    :class:`~mlip_eqx.simulation.exceptions.SimulationExplodedError`), the
    snapshots are added to ``self.state`` and the loggers are called.

    ``num_neighbor_list_builds`` counts the Verlet lists built so far (a
    rebuild every few steps means the skin is too thin).

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
        """Constructor: checks the structures and builds the Verlet list.

        Args:
            atoms: A structure, or a list of structures to simulate as a batch.
            force_field: The force field (float64 if x64 is enabled).
            config: The settings.

        Raises:
            ValueError: No structure or an empty one.
            InvalidStructureError: Positions or cell are not finite, or a
                periodic cell has no volume.
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
        self.num_neighbor_list_builds = 0
        self._atoms = [a.copy() for a in atoms_list]
        elements = force_field.allowed_atomic_numbers
        systems = []
        for k, a in enumerate(self._atoms):
            source = f"structure {k}" if self._is_batched else "the structure"
            check_known_elements(a.numbers, elements, source)
            systems.append(atoms_to_chemical_system(a, source, required_labels=()))
        table = species_table(elements)
        self._layout = SystemsLayout(
            species=np.concatenate([table[a.numbers] for a in self._atoms]),
            sizes=tuple(len(a) for a in self._atoms),
            cells=tuple(np.asarray(s.cell, np.float64) for s in systems),
            pbc=tuple(np.asarray(s.pbc, bool) for s in systems),
            cutoff=force_field.cutoff_distance,
        )
        self._dtype = force_field.dtype
        positions = np.concatenate([a.positions for a in self._atoms])
        multiplier = config.edge_capacity_multiplier
        num_edges = len(find_pairs(positions, self._layout, self._layout.cutoff)[0])
        self._verlet = self._build_verlet(
            positions, 0, math.ceil(multiplier * num_edges)
        )
        self._params, static = force_field.partition()
        self._integrator = _integrator(config, static, self._layout)
        self._schedule = get_temperature_schedule(config) if config.is_md else None
        options = compiler_options(jax.default_backend())
        self._initialise = jax.jit(self._initial_state, compiler_options=options)
        self._segment = jax.jit(self._run_segment, compiler_options=options)
        self._snapshot_fn = functools.partial(_snapshot, static, self._layout, config)
        self._md_state = None

    def run(self) -> None:
        """Runs all episodes (a minimisation stops early once converged).

        Raises:
            SimulationExplodedError: A temperature became NaN or above 1e6 K, or
                an energy not finite; ``self.state`` holds the snapshots up to
                the episode where it happened.
            NeighborListSkinError: An atom moved by half the skin or more in
                one step.
        """
        config = self.config
        start = time.perf_counter()
        md_state, first = jax.device_get(self._initialise(self._params, self._verlet))
        self._md_state = md_state
        self._record(first, np.zeros(1, np.int64), time.perf_counter() - start)
        steps = config.steps_per_episode
        empty = jax.tree.map(
            lambda value: np.zeros(
                (steps // config.snapshot_interval,) + value.shape[1:], value.dtype
            ),
            first,
        )
        for episode in track(range(config.num_steps // steps), "JAX-MD simulation"):
            start = time.perf_counter()
            first_step = episode * steps
            self._md_state, snapshots = self._run_episode(
                self._md_state, first_step, first_step + steps, empty
            )
            snapshot_steps = first_step + config.snapshot_interval * np.arange(
                1, steps // config.snapshot_interval + 1
            )
            self._record(
                jax.device_get(snapshots), snapshot_steps, time.perf_counter() - start
            )
            if self._converged():
                logger.info("Minimisation converged after %d steps.", self.state.step)
                break

    def _run_episode(self, md_state, first_step: int, end: int, snapshots):
        """The steps ``first_step`` to ``end``: jitted stretches of steps, with
        the Verlet list rebuilt between them and a stretch rerun with more
        edge room when it ran out of it. Returns the final state and the
        episode's snapshots."""
        step, rebuilt = first_step, False
        while step < end:
            new_state, new_step, most_edges, new_snapshots = self._segment(
                self._params, md_state, self._verlet, step, first_step, end, snapshots
            )
            most_edges, new_step = int(most_edges), int(new_step)
            if most_edges > self._verlet.edge_capacity:
                self._grow_edge_capacity(most_edges, step)
                continue
            if new_step == step and rebuilt:
                raise NeighborListSkinError(
                    f"JAX-MD: at step {step}, an atom moved by half of "
                    f"neighbor_list_skin_angstrom "
                    f"({self.config.neighbor_list_skin_angstrom / 2:.3f} Å) or more in "
                    "one step: lower the timestep (timestep_fs, --timestep) or raise "
                    "the skin (neighbor_list_skin_angstrom)."
                )
            md_state, step, snapshots = new_state, new_step, new_snapshots
            rebuilt = step < end
            if rebuilt:
                self._verlet = self._build_verlet(
                    np.asarray(md_state.position),
                    self._verlet.capacity,
                    self._verlet.edge_capacity,
                    step,
                )
        return md_state, snapshots

    def _build_verlet(self, positions, capacity: int, edge_capacity: int, step=0):
        """The Verlet list of ``positions``, its capacity grown by 1.25 (at
        least) if the pairs do not fit."""
        skin = self.config.neighbor_list_skin_angstrom
        self.num_neighbor_list_builds += 1
        verlet, num_pairs = build_verlet_list(
            positions, self._layout, skin, capacity, edge_capacity, self._dtype
        )
        wanted = grown(capacity, num_pairs, self.config.edge_capacity_multiplier)
        if wanted == capacity:
            return verlet
        if capacity:
            logger.info(
                "JAX-MD: the Verlet list overflowed at step %d (%d pairs within "
                "cutoff + skin); capacity %d -> %d pairs (recompiling).",
                step,
                num_pairs,
                capacity,
                wanted,
            )
        return build_verlet_list(
            positions, self._layout, skin, wanted, edge_capacity, self._dtype
        )[0]

    def _grow_edge_capacity(self, needed: int, step: int) -> None:
        """More room for pairs within the cutoff (the stretch from ``step`` is
        rerun)."""
        old = self._verlet.edge_capacity
        new = grown(old, needed, self.config.edge_capacity_multiplier)
        logger.info(
            "JAX-MD: the edges overflowed after step %d (%d pairs within the cutoff, "
            "room for %d); capacity %d -> %d, rerunning from step %d (recompiling).",
            step,
            needed,
            old,
            old,
            new,
            step,
        )
        self._verlet = dataclasses.replace(self._verlet, edge_capacity=new)

    def _initial_state(self, params, verlet):
        """The integrator's state at step 0 and its snapshot."""
        init, _ = self._integrator
        config = self.config
        positions = jnp.asarray(
            np.concatenate([a.positions for a in self._atoms]), self._dtype
        )
        masses = jnp.asarray(
            np.concatenate([a.get_masses() for a in self._atoms]), self._dtype
        )
        kwargs = {"neighbors": verlet, "params": params}
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
        snapshot = self._snapshot_fn(params, state, verlet)
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

    def _run_segment(self, params, md_state, verlet, step, first_step, end, snapshots):
        """Steps from ``step`` until ``end``, or until the next step would move
        an atom by half the skin from the Verlet list's positions (that step is
        not taken). Returns the state, the step reached, the most pairs within
        the cutoff at any step, and the snapshots (``snapshots[k]`` is the
        state after step ``first_step + (k + 1) * snapshot_interval``)."""
        _, apply = self._integrator
        config = self.config
        interval = config.snapshot_interval
        is_nvt = config.is_md and config.md_integrator == MDIntegrator.NVT_LANGEVIN
        half_skin = config.neighbor_list_skin_angstrom / 2

        def record(state, step, snapshots):
            snapshot = self._snapshot_fn(params, state, verlet)
            index = (step - first_step) // interval - 1
            return jax.tree.map(
                lambda buffer, value: buffer.at[index].set(value), snapshots, snapshot
            )

        def one_step(carry):
            state, step, _, most_edges, snapshots = carry
            kwargs = {"neighbors": verlet, "params": params}
            if is_nvt:
                kwargs["kT"] = units.kB * self._schedule(step)
            new_state = apply(state, **kwargs)
            # NaN positions are taken: the explosion check reports them.
            taken = ~(largest_move(new_state.position, verlet) >= half_skin)
            state = jax.tree.map(
                lambda new, old: jnp.where(taken, new, old), new_state, state
            )
            step = step + taken.astype(step.dtype)
            edges = count_edges(state.position, verlet, self._layout)
            snapshots = jax.lax.cond(
                taken & (step % interval == 0),
                record,
                lambda state, step, snapshots: snapshots,
                state,
                step,
                snapshots,
            )
            return state, step, ~taken, jnp.maximum(most_edges, edges), snapshots

        def going_on(carry):
            _, step, stopped, _, _ = carry
            return (step < end) & ~stopped

        step = jnp.asarray(step, jnp.int32)
        carry = (md_state, step, jnp.array(False), jnp.zeros((), jnp.int32), snapshots)
        state, step, _, most_edges, snapshots = jax.lax.while_loop(
            going_on, one_step, carry
        )
        return state, step, most_edges, snapshots

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


def _energies(static, layout, params, positions, verlet):
    """Potential energy in eV of every structure."""
    graph = graph_from_verlet_list(positions, verlet, layout)
    energies = eqx.combine(params, static).energies(graph)
    return energies[: len(layout.sizes)]


def _snapshot(static, layout, config, params, state, verlet) -> dict:
    """What a snapshot records of the integrator state (flat over all atoms;
    per-structure quantities as [num_structures] arrays)."""
    snapshot = {
        "positions": state.position,
        "forces": state.force,
        "potential_energy": _energies(static, layout, params, state.position, verlet),
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
