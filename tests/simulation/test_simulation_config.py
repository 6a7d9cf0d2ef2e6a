"""Simulation configs (bad values name the field) and temperature schedules."""

import numpy as np
import pytest

from mlip_eqx.simulation.configs import (
    JaxMDSimulationConfig,
    TemperatureScheduleConfig,
)
from mlip_eqx.simulation.enums import SimulationType, TemperatureScheduleMethod
from mlip_eqx.simulation.temperature_scheduling import get_temperature_schedule
from mlip_eqx.utils.config import ConfigError


def test_bad_settings_raise_errors_naming_the_field():
    with pytest.raises(ConfigError, match=r"snapshot_interval \(3\) must divide"):
        JaxMDSimulationConfig(num_steps=10, snapshot_interval=3)
    with pytest.raises(ConfigError, match=r"num_episodes \(3\) must divide"):
        JaxMDSimulationConfig(num_steps=10, num_episodes=3)
    with pytest.raises(ConfigError, match=r"timestep_fs"):
        JaxMDSimulationConfig(num_steps=10, timestep_fs=-1.0)
    with pytest.raises(ConfigError, match=r"temperature_kelvin is needed"):
        JaxMDSimulationConfig(num_steps=10, temperature_kelvin=None)
    with pytest.raises(ConfigError, match=r"triangle schedule needs"):
        TemperatureScheduleConfig(method=TemperatureScheduleMethod.TRIANGLE)
    JaxMDSimulationConfig(
        num_steps=10,
        simulation_type=SimulationType.MINIMIZATION,
        temperature_kelvin=None,
    )


@pytest.mark.parametrize(
    ("num_steps", "interval", "expected"),
    [(10, 1, 10), (3000, 1, 1000), (2500, 10, 500), (70, 7, 70), (2100, 7, 700)],
)
def test_episodes_have_at_most_1000_steps_and_whole_snapshots(
    num_steps, interval, expected
):
    config = JaxMDSimulationConfig(num_steps=num_steps, snapshot_interval=interval)
    assert config.steps_per_episode == expected


def test_temperature_schedules():
    config = JaxMDSimulationConfig(num_steps=100, temperature_kelvin=250.0)
    assert get_temperature_schedule(config)(37) == 250.0
    linear = config.replace(
        temperature_schedule_config=TemperatureScheduleConfig(
            method=TemperatureScheduleMethod.LINEAR,
            start_temperature=100.0,
            end_temperature=300.0,
        )
    )
    values = [float(get_temperature_schedule(linear)(s)) for s in (0, 50, 100, 200)]
    np.testing.assert_allclose(values, [100.0, 200.0, 300.0, 300.0])
    triangle = config.replace(
        temperature_schedule_config=TemperatureScheduleConfig(
            method=TemperatureScheduleMethod.TRIANGLE,
            min_temperature=100.0,
            max_temperature=500.0,
            heating_period=40,
        )
    )
    schedule = get_temperature_schedule(triangle)
    values = [float(schedule(s)) for s in (0, 10, 20, 30, 40, 60)]
    np.testing.assert_allclose(values, [100.0, 300.0, 500.0, 300.0, 100.0, 500.0])
