"""Errors of simulations."""

import numpy as np

EXPLOSION_TEMPERATURE_KELVIN = 1e6


class SimulationExplodedError(RuntimeError):
    """The temperature (or energy) of a simulation became NaN or unphysical."""


class NeighborListSkinError(RuntimeError):
    """An atom moved by half the neighbour-list skin or more in one step."""


def check_not_exploded(
    temperatures: np.ndarray, energies: np.ndarray, steps: np.ndarray, system: str
) -> None:
    """Raises if a temperature is NaN or above 1e6 K, or an energy is not finite.

    Args:
        temperatures: Temperatures in K of the snapshots (empty for minimisations).
        energies: Potential energies in eV of the snapshots.
        steps: The step of each snapshot.
        system: What the system is (e.g. "system 2"), for the message.

    Raises:
        SimulationExplodedError: naming the system, the first bad step and value.
    """
    temperatures = np.asarray(temperatures)
    energies = np.asarray(energies)
    hot = ~(temperatures <= EXPLOSION_TEMPERATURE_KELVIN)  # NaN counts as hot
    if hot.any():
        first = int(np.flatnonzero(hot)[0])
        raise SimulationExplodedError(
            f"The simulation of {system} exploded: its temperature is "
            f"{temperatures[first]:.4g} K at step {int(steps[first])} (NaN or above "
            f"{EXPLOSION_TEMPERATURE_KELVIN:.0e} K). Try a smaller timestep_fs, a "
            "structure without overlapping atoms, or check the model."
        )
    bad = ~np.isfinite(energies)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise SimulationExplodedError(
            f"The simulation of {system} exploded: its potential energy is "
            f"{energies[first]} at step {int(steps[first])}."
        )
