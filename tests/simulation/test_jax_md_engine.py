"""JaxMDSimulationEngine: NVE energy conservation and the same trajectory as the
ASE engine, NVT temperature, FIRE, neighbour-list reallocation, explosions,
bad structures."""

import logging

import ase.io
import jax
import numpy as np
import pytest

from mlip_eqx.simulation.ase import ASESimulationEngine
from mlip_eqx.simulation.enums import MDIntegrator, SimulationType
from mlip_eqx.simulation.exceptions import SimulationExplodedError
from mlip_eqx.simulation.jax_md import JaxMDSimulationEngine
from mlip_eqx.simulation.trajectory import write_trajectory
from tests.helpers.models import force_field
from tests.simulation.systems import jittered_cell, with_velocities

SKIN = 0.5  # Å
NVE = MDIntegrator.NVE_VELOCITY_VERLET


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def tiny_mace():
    return force_field("mace-tiny", predict_stress=False)


def jax_md_config(**fields) -> JaxMDSimulationEngine.Config:
    return JaxMDSimulationEngine.Config(neighbor_list_skin_angstrom=SKIN, **fields)


def test_nve_conserves_energy_and_matches_the_ase_engine(x64, tmp_path):
    atoms = with_velocities(jittered_cell(seed=1), 300.0, seed=1)
    engine = JaxMDSimulationEngine(
        atoms,
        tiny_mace(),
        jax_md_config(md_integrator=NVE, num_steps=300, snapshot_interval=10),
    )
    engine.run()
    state = engine.state
    assert state.step == 300 and state.positions.shape == (31, 64, 3)
    np.testing.assert_array_equal(state.snapshot_steps, np.arange(0, 301, 10))
    total = state.potential_energy + state.kinetic_energy
    # Measured: 3.3e-5 eV/atom at most over 300-400 steps of 1 fs (float64).
    drift_per_atom = np.abs(total - total[0]).max() / len(atoms)
    assert drift_per_atom < 1e-4
    assert state.temperature.max() > 400.0  # the atoms really move and heat up

    ase_engine = ASESimulationEngine(
        atoms,
        tiny_mace(),
        ASESimulationEngine.Config(
            md_integrator=NVE, num_steps=100, snapshot_interval=10
        ),
    )
    ase_engine.run()
    # Measured: 1.2e-8 Å apart after 100 steps.
    np.testing.assert_allclose(
        ase_engine.state.positions, state.positions[:11], rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(
        ase_engine.state.potential_energy, state.potential_energy[:11], rtol=1e-9
    )

    path = tmp_path / "trajectory.xyz"
    write_trajectory(state, path)
    frames = ase.io.read(path, index=":")
    assert len(frames) == 31
    # extxyz stores 8 decimals
    np.testing.assert_allclose(frames[-1].positions, state.positions[-1], atol=1e-7)
    np.testing.assert_allclose(
        frames[-1].get_velocities(), state.velocities[-1], atol=1e-8
    )
    np.testing.assert_allclose(
        frames[-1].get_potential_energy(), state.potential_energy[-1], rtol=1e-7
    )


def test_nvt_langevin_holds_the_target_temperature_for_a_batch(x64):
    # Four 64-atom cells in one batch (256 atoms): the instantaneous temperature
    # of the batch fluctuates by sqrt(2 / 768) = 5 %; with friction 0.1/fs it
    # decorrelates within ~10 fs, so the 150 fs of the second half average
    # about 15 independent values: the mean is off by ~1.3 % (1 sigma), and 4 %
    # is 3 sigma. Measured: 605 K for a 600 K target.
    target = 600.0
    engine = JaxMDSimulationEngine(
        [jittered_cell(seed) for seed in range(4)],
        tiny_mace(),
        jax_md_config(
            temperature_kelvin=target,
            friction=0.1,
            num_steps=300,
            snapshot_interval=2,
        ),
    )
    engine.run()
    temperatures = np.array(engine.state.temperature)  # [4, 151]
    assert temperatures.shape == (4, 151)
    second_half = temperatures[:, 75:].mean()
    assert abs(second_half - target) < 0.04 * target
    assert len(engine.state.system(3).positions) == 151


def test_fire_minimisation_reduces_the_largest_force_below_0_01(x64):
    atoms = jittered_cell(seed=2, side=3, spacing=3.5)
    config = jax_md_config(
        simulation_type=SimulationType.MINIMIZATION,
        num_steps=2000,
        snapshot_interval=10,
        num_episodes=20,
        temperature_kelvin=None,
        max_force_convergence_threshold=0.01,
    )
    engine = JaxMDSimulationEngine(atoms, tiny_mace(), config)
    engine.run()
    largest = np.linalg.norm(engine.state.forces, axis=-1).max(axis=-1)
    assert largest[0] > 0.1
    assert largest[-1] < 0.01
    assert engine.state.step < 2000  # stopped once converged
    assert engine.state.potential_energy[-1] < engine.state.potential_energy[0]


def test_rebuilt_and_overflowing_lists_give_the_trajectory_of_a_roomy_one(x64, caplog):
    # A density wave along x: atoms converge on the plane x = 0, where the
    # number of pairs within the cutoff grows (beyond a list without spare
    # room), and move apart around x = L / 2.
    atoms = jittered_cell(seed=3)
    velocities = np.zeros((len(atoms), 3))
    velocities[:, 0] = -0.15 * np.sin(2 * np.pi * atoms.get_scaled_positions()[:, 0])
    atoms.set_velocities(velocities)  # Å/(ASE time)
    config = dict(md_integrator=NVE, num_steps=60, snapshot_interval=10)
    # A thin skin: the Verlet list is rebuilt often, and no edge room is spare.
    tight = JaxMDSimulationEngine(
        atoms,
        tiny_mace(),
        JaxMDSimulationEngine.Config(
            edge_capacity_multiplier=1.0, neighbor_list_skin_angstrom=0.2, **config
        ),
    )
    with caplog.at_level(logging.INFO, logger="mlip_eqx"):
        tight.run()
    assert "the edges overflowed" in caplog.text
    assert "the Verlet list overflowed" in caplog.text
    assert tight.num_neighbor_list_builds > 3
    # A thick skin and room to spare: one list for the whole run.
    roomy = JaxMDSimulationEngine(
        atoms,
        tiny_mace(),
        JaxMDSimulationEngine.Config(
            edge_capacity_multiplier=3.0, neighbor_list_skin_angstrom=2.0, **config
        ),
    )
    roomy.run()
    assert roomy.num_neighbor_list_builds == 1
    np.testing.assert_allclose(
        tight.state.positions, roomy.state.positions, rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(
        tight.state.potential_energy, roomy.state.potential_energy, rtol=1e-10
    )


def test_an_exploding_simulation_stops_with_a_clear_error():
    atoms = with_velocities(jittered_cell(seed=4), 3e6, seed=4)  # above 1e6 K
    engine = JaxMDSimulationEngine(
        atoms, tiny_mace(), jax_md_config(md_integrator=NVE, num_steps=10)
    )
    with pytest.raises(SimulationExplodedError, match=r"exploded.*K at step 0"):
        engine.run()
    assert engine.state.step == 0


@pytest.mark.parametrize("pbc", [True, (True, False, True)])
def test_narrow_and_partly_periodic_cells_match_the_ase_engine(x64, pbc):
    # About 7.5 Å wide: narrower than twice the 4 Å cutoff, so atoms see
    # several images of one another.
    atoms = with_velocities(jittered_cell(seed=5, side=3), 600.0, seed=5)
    atoms.pbc = pbc
    config = dict(md_integrator=NVE, num_steps=50, snapshot_interval=10)
    engine = JaxMDSimulationEngine(atoms, tiny_mace(), jax_md_config(**config))
    engine.run()
    reference = ASESimulationEngine(
        atoms, tiny_mace(), ASESimulationEngine.Config(**config)
    )
    reference.run()
    np.testing.assert_allclose(
        engine.state.positions, reference.state.positions, rtol=0, atol=1e-8
    )
    np.testing.assert_allclose(
        engine.state.potential_energy, reference.state.potential_energy, rtol=1e-9
    )


def test_a_batch_runs_each_structure_as_if_alone(x64):
    # A periodic cell and a molecule of a different size in one batch.
    crystal = with_velocities(jittered_cell(seed=6), 300.0, seed=6)
    molecule = with_velocities(jittered_cell(seed=7, side=2), 300.0, seed=7)
    molecule.pbc = False
    config = jax_md_config(md_integrator=NVE, num_steps=40, snapshot_interval=10)
    batch = JaxMDSimulationEngine([crystal, molecule], tiny_mace(), config)
    batch.run()
    for k, atoms in enumerate((crystal, molecule)):
        alone = JaxMDSimulationEngine(atoms, tiny_mace(), config)
        alone.run()
        together = batch.state.system(k)
        np.testing.assert_allclose(
            together.positions, alone.state.positions, rtol=0, atol=1e-10
        )
        np.testing.assert_allclose(
            together.potential_energy, alone.state.potential_energy, rtol=1e-12
        )
        np.testing.assert_allclose(together.temperature, alone.state.temperature)
