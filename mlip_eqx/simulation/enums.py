"""Kinds of simulations, integrators, temperature schedules and minimisers."""

from enum import Enum


class SimulationType(Enum):
    """What a simulation does.

    Attributes:
        MD: Molecular dynamics.
        MINIMIZATION: Energy minimisation (relaxation of the positions).
    """

    MD = "md"
    MINIMIZATION = "minimization"


class MDIntegrator(Enum):
    """The integrator (and ensemble) of molecular dynamics.

    Attributes:
        NVT_LANGEVIN: Langevin dynamics in the NVT ensemble.
        NVE_VELOCITY_VERLET: Velocity Verlet in the NVE ensemble.
    """

    NVT_LANGEVIN = "nvt_langevin"
    NVE_VELOCITY_VERLET = "nve_velocity_verlet"


class TemperatureScheduleMethod(Enum):
    """How the thermostat's target temperature changes with the step.

    Attributes:
        CONSTANT: The same temperature at every step.
        LINEAR: From a start to an end temperature over the simulation.
        TRIANGLE: A triangle wave between a minimum and a maximum.
    """

    CONSTANT = "constant"
    LINEAR = "linear"
    TRIANGLE = "triangle"


class StructureOptimizationMethod(Enum):
    """The minimiser of the ASE engine (the JAX-MD engine always uses FIRE).

    Attributes:
        BFGS: Broyden-Fletcher-Goldfarb-Shanno (ASE's ``BFGS``).
        FIRE: Fast inertial relaxation engine (ASE's ``FIRE``).
    """

    BFGS = "bfgs"
    FIRE = "fire"
