"""Writing the snapshots of a simulation as an extxyz trajectory."""

import os

import ase
import ase.io
import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_eqx.simulation.state import SimulationState


def trajectory_atoms(state: SimulationState, system: int = 0) -> list[ase.Atoms]:
    """The snapshots of one system as ``ase.Atoms``, with energy and forces
    (a single-point calculator), velocities, and step, temperature and kinetic
    energy in ``atoms.info``.

    Args:
        state: The state of a simulation.
        system: Which structure of a batched simulation.
    """
    state = state.system(system)
    frames = []
    for index, step in enumerate(np.asarray(state.snapshot_steps)):
        atoms = ase.Atoms(
            numbers=state.atomic_numbers,
            positions=state.positions[index],
            cell=state.cell[index],
            pbc=state.pbc,
        )
        if state.velocities is not None:
            atoms.set_velocities(state.velocities[index])
        atoms.info["step"] = int(step)
        if state.temperature is not None:
            atoms.info["temperature_kelvin"] = float(state.temperature[index])
            atoms.info["kinetic_energy"] = float(state.kinetic_energy[index])
        atoms.calc = SinglePointCalculator(
            atoms,
            energy=float(state.potential_energy[index]),
            forces=np.asarray(state.forces[index]),
        )
        frames.append(atoms)
    return frames


def write_trajectory(
    state: SimulationState, path: str | os.PathLike, system: int = 0
) -> None:
    """Writes the snapshots of one system to ``path`` as extxyz (positions in Å,
    energy in eV, forces in eV/Å, velocities and temperature), readable with
    ``ase.io.read(path, index=":")``.

    Args:
        state: The state of a simulation.
        path: The output file.
        system: Which structure of a batched simulation.
    """
    ase.io.write(path, trajectory_atoms(state, system), format="extxyz")
