"""ASESimulationEngine: minimisation, loggers, the temperature schedule, explosions
and bad input (the NVE trajectory is compared with JAX-MD's in
test_jax_md_engine.py)."""

import jax
import numpy as np
import pytest

from mlip_eqx.simulation.ase import ASESimulationEngine
from mlip_eqx.simulation.configs import TemperatureScheduleConfig
from mlip_eqx.simulation.enums import (
    MDIntegrator,
    SimulationType,
    StructureOptimizationMethod,
    TemperatureScheduleMethod,
)
from mlip_eqx.simulation.exceptions import SimulationExplodedError
from tests.helpers.models import force_field
from tests.simulation.systems import jittered_cell, with_velocities


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("method", list(StructureOptimizationMethod))
def test_minimisation_reduces_the_largest_force_below_0_01(x64, method):
    atoms = jittered_cell(seed=2, side=3, spacing=3.5)
    config = ASESimulationEngine.Config(
        simulation_type=SimulationType.MINIMIZATION,
        minimization_method=method,
        num_steps=500,
        snapshot_interval=5,
        temperature_kelvin=None,
        max_force_convergence_threshold=0.01,
    )
    engine = ASESimulationEngine(atoms, force_field("mace-tiny", False), config)
    calls = []
    engine.attach_logger(lambda state: calls.append(state.step))
    engine.run()
    largest = np.linalg.norm(engine.state.forces, axis=-1).max(axis=-1)
    assert largest[0] > 0.1 and largest[-1] < 0.01
    assert engine.state.snapshot_steps[-1] == engine.state.step < 500
    assert calls[-1] == engine.state.step and len(calls) >= 2
    np.testing.assert_array_equal(atoms.positions, jittered_cell(2, 3, 3.5).positions)


def test_langevin_follows_a_linear_temperature_schedule():
    schedule = TemperatureScheduleConfig(
        method=TemperatureScheduleMethod.LINEAR,
        start_temperature=100.0,
        end_temperature=300.0,
    )
    config = ASESimulationEngine.Config(
        num_steps=20, temperature_schedule_config=schedule, friction=0.1
    )
    engine = ASESimulationEngine(
        jittered_cell(4), force_field("mace-tiny", False), config
    )
    engine.run()
    assert engine.state.temperature.shape == (21,)
    assert engine.state.velocities.shape == (21, 64, 3)
    assert engine._dynamics.temp == pytest.approx(300.0 * 8.617333262e-5, rel=1e-6)


def test_an_exploding_simulation_stops_with_a_clear_error():
    """Velocities of 3e6 K (above the 1e6 K a target may have) explode at once."""
    config = ASESimulationEngine.Config(
        md_integrator=MDIntegrator.NVE_VELOCITY_VERLET, num_steps=10
    )
    engine = ASESimulationEngine(
        with_velocities(jittered_cell(4), 3e6, seed=4),
        force_field("mace-tiny", False),
        config,
    )
    with pytest.raises(SimulationExplodedError, match=r"exploded.*K at step 0"):
        engine.run()


def test_a_batch_is_refused():
    config = ASESimulationEngine.Config(num_steps=10)
    with pytest.raises(TypeError):
        ASESimulationEngine([jittered_cell(4)], force_field("mace-tiny", False), config)
