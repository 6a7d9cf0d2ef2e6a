"""Settings of the simulation engines."""

from mlip_eqx.simulation.configs.ase_config import ASESimulationConfig
from mlip_eqx.simulation.configs.jax_md_config import JaxMDSimulationConfig
from mlip_eqx.simulation.configs.simulation_config import (
    SimulationConfig,
    TemperatureScheduleConfig,
)

__all__ = [
    "ASESimulationConfig",
    "JaxMDSimulationConfig",
    "SimulationConfig",
    "TemperatureScheduleConfig",
]
