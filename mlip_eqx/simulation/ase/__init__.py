"""Simulations through ASE: the calculator of a force field and the engine."""

from mlip_eqx.simulation.ase.ase_simulation_engine import ASESimulationEngine
from mlip_eqx.simulation.ase.mlip_ase_calculator import (
    MLIPForceFieldASECalculator,
    NumberOfAtomsChangedError,
)

__all__ = [
    "ASESimulationEngine",
    "MLIPForceFieldASECalculator",
    "NumberOfAtomsChangedError",
]
