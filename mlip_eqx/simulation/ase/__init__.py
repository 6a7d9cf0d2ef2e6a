"""Simulations through ASE: the calculator of a force field."""

from mlip_eqx.simulation.ase.mlip_ase_calculator import (
    MLIPForceFieldASECalculator,
    NumberOfAtomsChangedError,
)

__all__ = ["MLIPForceFieldASECalculator", "NumberOfAtomsChangedError"]
