"""SimulationEngine: the interface of the simulation engines."""

import abc
from collections.abc import Callable

from mlip_eqx.simulation.state import SimulationState

SimulationLogger = Callable[[SimulationState], None]


class SimulationEngine(abc.ABC):
    """A simulation of structures with a force field; results in ``self.state``.

    ``engine.run()`` runs it once; loggers attached with :meth:`attach_logger`
    are called with the state whenever new snapshots were recorded.

    Attributes:
        state: The snapshots so far.
        loggers: The functions called with the state.
    """

    state: SimulationState
    loggers: list[SimulationLogger]

    @abc.abstractmethod
    def run(self) -> None:
        """Runs the simulation, filling ``self.state`` and calling the loggers."""

    def attach_logger(self, logger: SimulationLogger) -> None:
        """Adds ``logger``, called with ``self.state`` after new snapshots.

        Args:
            logger: A function of the simulation state that returns nothing.
        """
        self.loggers.append(logger)

    def _call_loggers(self) -> None:
        for logger in self.loggers:
            logger(self.state)
