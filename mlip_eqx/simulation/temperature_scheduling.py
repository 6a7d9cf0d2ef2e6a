"""Target temperatures of the thermostat as functions of the step."""

from collections.abc import Callable

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from mlip_eqx.simulation.configs.simulation_config import SimulationConfig
from mlip_eqx.simulation.enums import TemperatureScheduleMethod

Schedule = Callable[[int | Int[Array, ""]], float | Float[Array, ""]]


def get_temperature_schedule(config: SimulationConfig) -> Schedule:
    """The target temperature in K as a function of the step (a Python int or a
    traced integer).

    Args:
        config: The simulation's settings: its ``temperature_schedule_config``
            (None: constant ``temperature_kelvin``) and ``num_steps``.
    """
    schedule = config.temperature_schedule_config
    if schedule is None or schedule.method == TemperatureScheduleMethod.CONSTANT:
        temperature = None if schedule is None else schedule.temperature
        return constant_schedule(
            config.temperature_kelvin if temperature is None else temperature
        )
    if schedule.method == TemperatureScheduleMethod.LINEAR:
        return linear_schedule(
            schedule.start_temperature, schedule.end_temperature, config.num_steps
        )
    return triangle_schedule(
        schedule.max_temperature, schedule.min_temperature, schedule.heating_period
    )


def constant_schedule(temperature: float) -> Schedule:
    """``temperature`` (K) at every step."""
    return lambda step: temperature


def linear_schedule(
    start_temperature: float, end_temperature: float, num_steps: int
) -> Schedule:
    """From ``start_temperature`` at step 0 to ``end_temperature`` (K) at step
    ``num_steps``, constant after it."""

    def schedule(step):
        fraction = jnp.minimum(step / num_steps, 1.0)
        return start_temperature + fraction * (end_temperature - start_temperature)

    return schedule


def triangle_schedule(
    max_temperature: float, min_temperature: float, heating_period: int
) -> Schedule:
    """A triangle wave (K): ``min_temperature`` at every multiple of
    ``heating_period`` steps, ``max_temperature`` half way between."""

    def schedule(step):
        phase = jnp.mod(step, heating_period) / heating_period
        height = 1.0 - jnp.abs(2.0 * phase - 1.0)
        return min_temperature + height * (max_temperature - min_temperature)

    return schedule
