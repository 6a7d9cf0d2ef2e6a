"""Settings that both simulation engines share, with the same meaning."""

import dataclasses

from mlip_eqx.simulation.enums import (
    MDIntegrator,
    SimulationType,
    TemperatureScheduleMethod,
)
from mlip_eqx.simulation.exceptions import EXPLOSION_TEMPERATURE_KELVIN
from mlip_eqx.utils.config import (
    Config,
    ConfigError,
    PositiveFloat,
    PositiveInt,
    constrained,
)

AtLeastOne = constrained(float, lambda value: value >= 1.0, "a number >= 1")

# The fields that each schedule method needs.
_SCHEDULE_FIELDS = {
    TemperatureScheduleMethod.CONSTANT: (),
    TemperatureScheduleMethod.LINEAR: ("start_temperature", "end_temperature"),
    TemperatureScheduleMethod.TRIANGLE: (
        "max_temperature",
        "min_temperature",
        "heating_period",
    ),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TemperatureScheduleConfig(Config):
    """The thermostat's target temperature as a function of the step.

    Attributes:
        method: Constant, linear or triangle.
        temperature: Constant schedule: the temperature in K (None: the
            simulation's ``temperature_kelvin``).
        start_temperature: Linear schedule: the temperature at step 0 in K.
        end_temperature: Linear schedule: the temperature at the last step in K.
        max_temperature: Triangle schedule: the peak temperature in K.
        min_temperature: Triangle schedule: the temperature at step 0 and at every
            multiple of ``heating_period`` in K.
        heating_period: Triangle schedule: steps from one minimum to the next.
    """

    method: TemperatureScheduleMethod = TemperatureScheduleMethod.CONSTANT
    temperature: PositiveFloat | None = None
    start_temperature: PositiveFloat | None = None
    end_temperature: PositiveFloat | None = None
    max_temperature: PositiveFloat | None = None
    min_temperature: PositiveFloat | None = None
    heating_period: PositiveInt | None = None

    def __check_init__(self) -> None:
        missing = [
            name
            for name in _SCHEDULE_FIELDS[self.method]
            if getattr(self, name) is None
        ]
        if missing:
            raise ConfigError(
                f"TemperatureScheduleConfig: the {self.method.value} schedule needs "
                f"{', '.join(missing)}."
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimulationConfig(Config):
    """Settings of every simulation engine, in ASE's units.

    Attributes:
        simulation_type: Molecular dynamics or energy minimisation.
        md_integrator: The MD integrator (ignored for minimisations).
        num_steps: Number of steps; for a minimisation the most steps, fewer if
            it converges first (see ``max_force_convergence_threshold``).
        snapshot_interval: The state is recorded at step 0 and after every this
            many steps; it must divide ``num_steps``.
        edge_capacity_multiplier: Padded edge capacity as a multiple of the
            number of edges found (>= 1); grown by this factor when exceeded.
        random_seed: Seed of the initial velocities and of the thermostat noise.
        timestep_fs: MD time step in fs (for JAX-MD's FIRE, its initial step).
        temperature_kelvin: MD temperature in K: the thermostat's target, and the
            temperature of the initial Maxwell-Boltzmann velocities when the
            atoms have none. None only for minimisations.
        temperature_schedule_config: A changing Langevin target temperature;
            None: constant ``temperature_kelvin``.
        friction: Langevin friction coefficient gamma in 1/fs (momenta relax as
            exp(-gamma t)); the same meaning in both engines. 0.01/fs relaxes in
            100 fs.
        max_force_convergence_threshold: A minimisation stops once the largest
            force on an atom (its norm) is below this, in eV/Å; None: run all
            ``num_steps``.
    """

    simulation_type: SimulationType = SimulationType.MD
    md_integrator: MDIntegrator = MDIntegrator.NVT_LANGEVIN
    num_steps: PositiveInt
    snapshot_interval: PositiveInt = 1
    edge_capacity_multiplier: AtLeastOne = 1.25
    random_seed: int = 42
    timestep_fs: PositiveFloat = 1.0
    temperature_kelvin: PositiveFloat | None = 300.0
    temperature_schedule_config: TemperatureScheduleConfig | None = None
    friction: PositiveFloat = 0.01
    max_force_convergence_threshold: PositiveFloat | None = None

    def __check_init__(self) -> None:
        name = type(self).__name__
        if self.num_steps % self.snapshot_interval:
            raise ConfigError(
                f"{name}: snapshot_interval ({self.snapshot_interval}) must divide "
                f"num_steps ({self.num_steps}), so that the last state is recorded."
            )
        constant = self.temperature_schedule_config is None or (
            self.temperature_schedule_config.method
            == TemperatureScheduleMethod.CONSTANT
            and self.temperature_schedule_config.temperature is None
        )
        if self.is_md and self.temperature_kelvin is None and constant:
            raise ConfigError(
                f"{name}: temperature_kelvin is needed for molecular dynamics "
                "(the thermostat's target and the initial velocities)."
            )
        if (self.temperature_kelvin or 0.0) >= EXPLOSION_TEMPERATURE_KELVIN:
            raise ConfigError(
                f"{name}: temperature_kelvin {self.temperature_kelvin:g} K is at or "
                f"above {EXPLOSION_TEMPERATURE_KELVIN:.0e} K, where a run counts as "
                "exploded."
            )

    @property
    def is_md(self) -> bool:
        """Whether this is molecular dynamics (not a minimisation)."""
        return self.simulation_type == SimulationType.MD

    @property
    def num_snapshots(self) -> int:
        """Snapshots of a run that does all steps, the initial state included."""
        return self.num_steps // self.snapshot_interval + 1
