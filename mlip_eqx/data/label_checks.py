"""Checks of a training set's labels as a whole, before any graph is built:
weights that would leave nothing to train, and magnitudes that suggest labels in
another unit than eV, eV/Å and eV/Å³."""

import logging
from collections.abc import Sequence

import numpy as np

from mlip_eqx.data.chemical_system import ChemicalSystem

logger = logging.getLogger("mlip_eqx")

# Far above DFT labels in eV/Å and eV/Å³ (forces of equilibrium MD are
# 0.1-3 eV/Å; 10 eV/Å³ is 1,600 GPa), and reached by meV/Å, kcal/mol/Å or GPa.
IMPLAUSIBLE_FORCES_RMS = 50.0  # eV/Å
IMPLAUSIBLE_STRESS = 10.0  # eV/Å³


def check_training_labels(systems: Sequence[ChemicalSystem]) -> None:
    """Raises if no training structure has a positive weight; warns when the
    forces' root mean square or the largest stress component is implausible in
    eV/Å or eV/Å³ (naming the value and the units it would fit).

    Raises:
        ValueError: Every structure has weight 0 (the loss would be 0).
    """
    if systems and not any(system.weight > 0 for system in systems):
        raise ValueError(
            f"All {len(systems)} training structures have weight 0, so the loss "
            "is 0 and nothing would train: check the data's weight key and the "
            "config_type weights."
        )
    forces = [s.forces for s in systems if s.forces is not None and s.num_atoms]
    if forces:
        rms = float(np.sqrt(np.mean(np.concatenate(forces) ** 2)))
        if rms > IMPLAUSIBLE_FORCES_RMS:
            logger.warning(
                "The training forces' RMS is %.4g, implausible in eV/Å (DFT forces "
                "are typically 0.1-3 eV/Å): are they in meV/Å or kcal/mol/Å? "
                "mlip_eqx reads eV, eV/Å and eV/Å³.",
                rms,
            )
    stresses = [np.abs(s.stress).max() for s in systems if s.stress is not None]
    if stresses and max(stresses) > IMPLAUSIBLE_STRESS:
        logger.warning(
            "The largest training stress component is %.4g, implausible in eV/Å³ "
            "(%.0f GPa): is the stress in GPa or kbar? mlip_eqx reads eV/Å³.",
            max(stresses),
            max(stresses) * 160.21766,
        )
