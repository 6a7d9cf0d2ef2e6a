"""Writing the snapshots of a simulation as a trajectory (extxyz or ASE's
``.traj``), at the end or as they are recorded."""

import os
from pathlib import Path

import ase
import ase.io
import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io.trajectory import Trajectory

from mlip_eqx.simulation.state import SimulationState

TRAJECTORY_FORMATS = {".xyz": "extxyz", ".extxyz": "extxyz", ".traj": "traj"}
"""ASE's format of each trajectory suffix we write."""


def trajectory_format(path: str | os.PathLike) -> str:
    """ASE's format of a trajectory file, named by its suffix.

    Raises:
        ValueError: For another suffix (naming the path and the suffixes).
    """
    suffix = Path(path).suffix.lower()
    if suffix not in TRAJECTORY_FORMATS:
        raise ValueError(
            f"{path}: a trajectory is written as extxyz (.xyz, .extxyz) or ASE's "
            f"trajectory (.traj), not {suffix or 'a file without suffix'}."
        )
    return TRAJECTORY_FORMATS[suffix]


def trajectory_atoms(
    state: SimulationState, system: int = 0, first: int = 0
) -> list[ase.Atoms]:
    """The snapshots of one system as ``ase.Atoms``, with energy and forces
    (a single-point calculator), velocities, and step, temperature and kinetic
    energy in ``atoms.info``.

    Args:
        state: The state of a simulation.
        system: Which structure of a batched simulation.
        first: The first snapshot to return.
    """
    state = state.system(system)
    frames = []
    for index, step in enumerate(np.asarray(state.snapshot_steps)):
        if index < first:
            continue
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
    ``ase.io.read(path, index=":")``; ASE's trajectory format for a ``.traj``
    path.

    Args:
        state: The state of a simulation.
        path: The output file.
        system: Which structure of a batched simulation.
    """
    fmt = TRAJECTORY_FORMATS.get(Path(path).suffix.lower(), "extxyz")
    ase.io.write(path, trajectory_atoms(state, system), format=fmt)


class TrajectoryWriter:
    """A simulation logger that appends the snapshots not yet written to a
    trajectory file, so that a run that stops (interrupted, exploded, killed)
    leaves every snapshot recorded before its last logger call on disk.

    The file is created by the first call (replacing an older one).

    Attributes:
        path: The trajectory file (extxyz, or ASE's ``.traj``).
        written: The number of snapshots written so far.
    """

    def __init__(self, path: str | os.PathLike, system: int = 0):
        """Args:
        path: The trajectory file; its suffix names the format (see
            :func:`trajectory_format`).
        system: Which structure of a batched simulation.

        Raises:
            ValueError: For a suffix of another format.
        """
        self.path = Path(path)
        self._format = trajectory_format(self.path)
        self._system = system
        self.written = 0

    def __call__(self, state: SimulationState) -> None:
        """Appends the snapshots of ``state`` after the ones written."""
        if state.snapshot_steps is None:
            return
        frames = trajectory_atoms(state, self._system, first=self.written)
        if not frames:
            return
        if self._format == "traj":  # ASE's writer of .traj cannot append
            with Trajectory(self.path, mode="a" if self.written else "w") as file:
                for frame in frames:
                    file.write(frame)
        else:
            ase.io.write(
                self.path, frames, format=self._format, append=bool(self.written)
            )
        self.written += len(frames)
