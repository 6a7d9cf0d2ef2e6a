"""ASESimulationConfig: settings of the ASE engine."""

import dataclasses

from mlip_eqx.simulation.configs.simulation_config import SimulationConfig
from mlip_eqx.simulation.enums import StructureOptimizationMethod
from mlip_eqx.utils.config import PositiveInt


@dataclasses.dataclass(frozen=True, kw_only=True)
class ASESimulationConfig(SimulationConfig):
    """Settings of :class:`~mlip_eqx.simulation.ase.ASESimulationEngine`.

    Also has the fields of
    :class:`~mlip_eqx.simulation.configs.simulation_config.SimulationConfig`.

    Attributes:
        log_interval: Loggers are called after every this many steps (and at the
            end); None: every ``snapshot_interval`` steps.
        minimization_method: ASE's BFGS or FIRE, for minimisations.
    """

    log_interval: PositiveInt | None = None
    minimization_method: StructureOptimizationMethod = StructureOptimizationMethod.BFGS
