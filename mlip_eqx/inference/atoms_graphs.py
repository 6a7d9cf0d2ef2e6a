"""Graphs of unlabelled ``ase.Atoms`` for a force field's cutoff and elements."""

from collections.abc import Sequence

import ase
import numpy as np
from ase.data import chemical_symbols

from mlip_eqx.data.graph_creation import graph_from_chemical_system, species_table
from mlip_eqx.data.graph_dataset_builder import UnseenElementsError
from mlip_eqx.data.readers.atoms_conversion import atoms_to_chemical_system
from mlip_eqx.graph.graph import Graph
from mlip_eqx.models.force_field import ForceField


def check_known_elements(
    atomic_numbers: Sequence[int] | np.ndarray,
    allowed_atomic_numbers: Sequence[int],
    source: str,
) -> None:
    """Raises if a structure has an element that the model does not know.

    Args:
        atomic_numbers: The structure's atomic numbers (e.g. ``atoms.numbers``).
        allowed_atomic_numbers: The model's elements (``force_field.
            allowed_atomic_numbers``).
        source: What the structure is (e.g. "structure 3"), for the message.

    Raises:
        UnseenElementsError: (a ValueError) naming the source and the unknown
            elements by symbol and atomic number.
    """
    unknown = sorted(
        set(np.asarray(atomic_numbers).tolist()) - set(allowed_atomic_numbers)
    )
    if not unknown:
        return
    described = ", ".join(f"{chemical_symbols[z]} (Z={z})" for z in unknown)
    known = ", ".join(chemical_symbols[z] for z in sorted(allowed_atomic_numbers))
    raise UnseenElementsError(
        f"{source} contains element(s) that the model does not know: {described}; "
        f"it knows {known}."
    )


def graph_from_atoms(atoms: ase.Atoms, force_field: ForceField, source: str) -> Graph:
    """The unpadded graph of ``atoms`` for ``force_field``'s cutoff and elements.

    Positions (Å), cell and pbc are taken from the atoms; labels they may carry
    are neither needed nor used.

    Args:
        atoms: The structure.
        force_field: Gives the cutoff in Å and the element table.
        source: What the structure is (e.g. "structure 3"), for messages.

    Returns:
        A Graph with one graph, no padding, and numpy leaves.

    Raises:
        UnseenElementsError: An element is not known to the model.
        InvalidStructureError: Positions or cell are not finite, or two atoms are
            closer than 0.1 Å.
    """
    elements = force_field.allowed_atomic_numbers
    check_known_elements(atoms.numbers, elements, source)
    system = atoms_to_chemical_system(atoms, source, required_labels=())
    return graph_from_chemical_system(
        system, force_field.cutoff_distance, species_table(elements)
    )
