"""JaxMDSimulationConfig: settings of the JAX-MD engine."""

import dataclasses

from mlip_eqx.simulation.configs.simulation_config import SimulationConfig
from mlip_eqx.utils.config import ConfigError, PositiveFloat, PositiveInt

MAX_STEPS_PER_EPISODE = 1000


@dataclasses.dataclass(frozen=True, kw_only=True)
class JaxMDSimulationConfig(SimulationConfig):
    """Settings of :class:`~mlip_eqx.simulation.jax_md.JaxMDSimulationEngine`.

    Also has the fields of
    :class:`~mlip_eqx.simulation.configs.simulation_config.SimulationConfig`.

    Attributes:
        num_episodes: The run is split into this many episodes of equal length,
            each one or more jitted loops; loggers are called and the
            temperature is checked for an explosion after each. It must
            divide ``num_steps``, and ``snapshot_interval`` the steps of an
            episode. None: the fewest episodes of at most 1,000 steps.
        neighbor_list_skin_angstrom: The Verlet list holds the pairs within the
            cutoff plus this skin (Å) and is rebuilt (on the host, between
            jitted stretches of steps) when an atom has moved by half of it.
            A larger skin means fewer rebuilds but more pairs to check.
    """

    num_episodes: PositiveInt | None = None
    neighbor_list_skin_angstrom: PositiveFloat = 1.0

    def __check_init__(self) -> None:
        if self.num_episodes is None:
            return
        if self.num_steps % self.num_episodes:
            raise ConfigError(
                f"JaxMDSimulationConfig: num_episodes ({self.num_episodes}) must "
                f"divide num_steps ({self.num_steps})."
            )
        if (self.num_steps // self.num_episodes) % self.snapshot_interval:
            raise ConfigError(
                "JaxMDSimulationConfig: snapshot_interval "
                f"({self.snapshot_interval}) must divide the steps per episode "
                f"({self.num_steps // self.num_episodes})."
            )

    @property
    def steps_per_episode(self) -> int:
        """Steps of one jitted episode (a multiple of ``snapshot_interval``)."""
        if self.num_episodes is not None:
            return self.num_steps // self.num_episodes
        snapshots = self.num_steps // self.snapshot_interval
        per_episode = max(
            1, min(snapshots, MAX_STEPS_PER_EPISODE // self.snapshot_interval)
        )
        while snapshots % per_episode:
            per_episode -= 1
        return per_episode * self.snapshot_interval
