"""Isolated atoms: one-atom structures without neighbours, whose energies are the
reference energies (E0) of their elements and which are not training data."""

import logging
import re
from collections.abc import Sequence

import numpy as np
from ase.data import chemical_symbols

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.graph.neighbourhood import compute_neighbour_list

logger = logging.getLogger("mlip_eqx")

# config_type values that mark an isolated atom, compared in lower case without
# underscores: mace-torch's "IsolatedAtom", BOTNet's "isolated_atom".
ISOLATED_ATOM_CONFIG_TYPE = "isolatedatom"
# Larger forces on an isolated atom are reported (they should be exactly zero).
MAX_ISOLATED_ATOM_FORCE = 1e-4  # eV/Å
# Two isolated-atom energies of one element further apart conflict.
ENERGY_TOLERANCE = 1e-6  # eV


class IsolatedAtomError(ValueError):
    """An isolated-atom structure is not one (several atoms, periodic images
    within the cutoff, no energy) or conflicts with another."""


def is_marked_isolated_atom(system: ChemicalSystem) -> bool:
    """Whether the structure's ``config_type`` says it is an isolated atom
    ("IsolatedAtom", "isolated_atom", any case)."""
    config_type = system.config_type
    return (
        config_type is not None
        and config_type.lower().replace("_", "") == ISOLATED_ATOM_CONFIG_TYPE
    )


def sees_periodic_images(system: ChemicalSystem, cutoff: float) -> bool:
    """Whether an atom of the structure has a periodic image of an atom (itself
    included) within ``cutoff`` Å."""
    if not any(system.pbc):
        return False
    senders, _, _ = compute_neighbour_list(
        system.positions, system.cell, np.asarray(system.pbc), cutoff
    )
    return senders.size > 0


def split_isolated_atoms(
    systems: Sequence[ChemicalSystem], cutoff: float, split: str
) -> tuple[list[ChemicalSystem], list[ChemicalSystem]]:
    """Separates the isolated atoms from the other structures.

    An isolated atom is a one-atom structure that sees no periodic image of
    itself within ``cutoff``. A one-atom structure that does (a one-atom
    crystal cell) is an ordinary structure, unless its ``config_type`` marks it
    as an isolated atom: that is an error.

    Args:
        systems: The structures of a split, in order.
        cutoff: The graph cutoff in Å.
        split: The split's name, for the messages.

    Returns:
        ``(other structures, isolated atoms)``, each in the given order.

    Raises:
        IsolatedAtomError: A structure marked as an isolated atom has several
            atoms or sees periodic images within the cutoff; the message names it.
    """
    others, isolated = [], []
    for system in systems:
        marked = is_marked_isolated_atom(system)
        if marked and system.num_atoms != 1:
            raise IsolatedAtomError(
                f"{split}: {system.source} has config_type={system.config_type!r}, "
                f"which marks an isolated atom, but {system.num_atoms} atoms."
            )
        if system.num_atoms == 1 and sees_periodic_images(system, cutoff):
            if marked:
                raise IsolatedAtomError(
                    f"{split}: {system.source} has config_type="
                    f"{system.config_type!r}, which marks an isolated atom, but its "
                    f"atom sees periodic images of itself within the cutoff of "
                    f"{cutoff} Å (pbc {list(system.pbc)}, cell "
                    f"{system.cell.tolist()}): an isolated atom needs no periodic "
                    "boundaries or a cell larger than the cutoff."
                )
            others.append(system)
        elif system.num_atoms == 1:
            isolated.append(system)
        else:
            others.append(system)
    return others, isolated


def check_isolated_atoms(systems: Sequence[ChemicalSystem], cutoff: float) -> None:
    """Raises IsolatedAtomError naming the first structure that is not an
    isolated atom (e.g. of a file of isolated atoms)."""
    others, _ = split_isolated_atoms(systems, cutoff, "isolated atoms")
    if others:
        system = others[0]
        why = (
            f"{system.num_atoms} atoms"
            if system.num_atoms != 1
            else f"its atom sees periodic images of itself within {cutoff} Å"
        )
        raise IsolatedAtomError(
            f"{system.source} is not an isolated atom: {why} (an isolated atom is "
            "one atom without periodic images within the cutoff)."
        )


def isolated_atom_energies(systems: Sequence[ChemicalSystem]) -> dict[int, float]:
    """The reference energy E0 of each element of the isolated atoms.

    Frames with forces larger than ``MAX_ISOLATED_ATOM_FORCE`` are logged as a
    warning naming them (the forces are not used).

    Args:
        systems: Isolated atoms (see :func:`split_isolated_atoms`).

    Returns:
        {Z: E0 in eV}, sorted by Z.

    Raises:
        IsolatedAtomError: A structure has no energy, or two give one element
            different energies (naming both).
    """
    energies: dict[int, tuple[float, str]] = {}
    for system in systems:
        z = int(system.atomic_numbers[0])
        if system.energy is None:
            raise IsolatedAtomError(
                f"{system.source}: this isolated atom ({chemical_symbols[z]}) has "
                "no energy label, so it cannot give its element's reference energy."
            )
        if system.forces is not None:
            largest = float(np.max(np.abs(system.forces)))
            if largest > MAX_ISOLATED_ATOM_FORCE:
                logger.warning(
                    "%s: the isolated atom (%s) has forces up to %.3g eV/Å; an "
                    "isolated atom's forces are zero (its forces are not used).",
                    system.source,
                    chemical_symbols[z],
                    largest,
                )
        if z in energies:
            known, where = energies[z]
            if abs(known - system.energy) > ENERGY_TOLERANCE:
                raise IsolatedAtomError(
                    f"Two isolated-atom energies of {chemical_symbols[z]}: "
                    f"{known!r} eV ({where}) and {system.energy!r} eV "
                    f"({system.source}); keep one."
                )
            continue
        energies[z] = (system.energy, system.source)
    return {z: energies[z][0] for z in sorted(energies)}


def isolated_atoms_origin(systems: Sequence[ChemicalSystem]) -> str:
    """Where the isolated atoms come from, in words: "isolated atoms in" and
    their files (the structures' sources without frame or group)."""
    origins = dict.fromkeys(
        re.sub(r"(, (frame|group) .*|\[\d+\])$", "", system.source)
        for system in systems
    )
    return "isolated atoms in " + ", ".join(origins)
