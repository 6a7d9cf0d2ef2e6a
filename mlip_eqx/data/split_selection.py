"""Which structures go into the splits, and the checks on them: the validation
hold-out, structures with unknown elements, data set indices and structures
without neighbours."""

import logging
from collections import Counter
from collections.abc import Sequence

import numpy as np
from ase.data import chemical_symbols

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.graph.graph import Graph

logger = logging.getLogger("mlip_eqx")


class UnseenElementsError(ValueError):
    """Validation or test structures contain elements absent from training."""


def check_dataset_indices(
    systems: list[ChemicalSystem], split: str, num_datasets: int
) -> None:
    """Raises ValueError naming the first structure whose ``dataset_idx`` is not
    below ``num_datasets``."""
    for system in systems:
        if system.dataset_idx >= num_datasets:
            raise ValueError(
                f"{split}: {system.source} has dataset_idx={system.dataset_idx}, but "
                f"there are {num_datasets} data sets (indices 0 to "
                f"{num_datasets - 1}; a data set is given by the model's "
                "DatasetInfo, or by the training structures that carry its index)."
            )


def hold_out_validation(
    systems: list[ChemicalSystem], fraction: float, seed: int
) -> tuple[list[ChemicalSystem], list[ChemicalSystem]]:
    """Splits off a random ``fraction`` (at least one structure) for validation."""
    if len(systems) < 2:
        raise ValueError(
            "Cannot hold out a validation set from fewer than 2 training structures; "
            "give validation data or set validation_fraction=0."
        )
    num_validation = min(len(systems) - 1, max(1, round(fraction * len(systems))))
    order = np.random.default_rng(seed).permutation(len(systems))
    held_out = set(order[:num_validation].tolist())
    train = [s for i, s in enumerate(systems) if i not in held_out]
    validation = [s for i, s in enumerate(systems) if i in held_out]
    logger.info(
        "No validation data given: held out %d of %d training structures (seed %d).",
        num_validation,
        len(systems),
        seed,
    )
    return train, validation


def drop_unseen_elements(
    systems: list[ChemicalSystem], elements: Sequence[int], split: str, strict: bool
) -> list[ChemicalSystem]:
    """Removes structures with elements outside ``elements`` (or raises if strict)."""
    known = set(elements)
    unseen_counts: Counter[int] = Counter()
    kept = []
    for system in systems:
        unseen = set(system.atomic_numbers.tolist()) - known
        if unseen:
            unseen_counts.update(unseen)
        else:
            kept.append(system)
    if unseen_counts:
        described = ", ".join(
            f"{chemical_symbols[z]} (Z={z}) in {count} structure(s)"
            for z, count in sorted(unseen_counts.items())
        )
        message = (
            f"{split}: {len(systems) - len(kept)} of {len(systems)} structures "
            f"contain elements that the model does not know: {described}."
        )
        if strict:
            raise UnseenElementsError(message)
        logger.warning("%s They are dropped.", message)
    return kept


def check_neighbours(
    graphs: list[Graph], systems: list[ChemicalSystem], split: str, cutoff: float
) -> None:
    """Warns about structures without any neighbour pair within ``cutoff`` (Å);
    raises if no training structure has one."""
    isolated = [
        system.source for graph, system in zip(graphs, systems) if not graph.num_edges
    ]
    if not isolated:
        return
    if split == "train" and len(isolated) == len(graphs):
        raise ValueError(
            f"The cutoff of {cutoff} Å finds no neighbours in any of the "
            f"{len(graphs)} training structures (e.g. {isolated[0]}): no atom is "
            f"within {cutoff} Å of another. Set a larger graph_cutoff_angstrom."
        )
    shown = "; ".join(isolated[:5]) + ("; ..." if len(isolated) > 5 else "")
    logger.warning(
        "%s: %d of %d structures have no neighbours within the cutoff of %s Å "
        "(their atoms get no edges): %s",
        split,
        len(isolated),
        len(graphs),
        cutoff,
        shown,
    )
