"""Reference energies E0 per element: given maps (symbols or atomic numbers, as
JSON text or a file), combined with isolated-atom energies, refitted for
fine-tuning, and subtracted from energy labels."""

import dataclasses
import json
import logging
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers as symbol_to_number
from ase.data import chemical_symbols

from mlip_eqx.data.dataset_info import DatasetInfo, fit_atomic_energies
from mlip_eqx.graph.graph import Graph

logger = logging.getLogger("mlip_eqx")

LEAST_SQUARES = "least squares"


class AtomicEnergiesError(ValueError):
    """A map of reference energies is malformed, names unknown elements, or
    lacks elements of the training data."""


def atomic_energies_by_number(
    energies: Mapping[object, object], where: str = "atomic energies"
) -> dict[int, float]:
    """The map with every key as an atomic number.

    Args:
        energies: {element: E0 in eV}; an element is a symbol ("H"), an atomic
            number (1) or its text ("1").
        where: What holds the map (e.g. a file), for the messages.

    Raises:
        AtomicEnergiesError: A key is no element (naming it), an energy is no
            finite number, or an element appears twice.
    """
    by_number: dict[int, float] = {}
    for key, energy in energies.items():
        z = _atomic_number(key, where)
        if isinstance(energy, bool) or not isinstance(energy, int | float):
            raise AtomicEnergiesError(
                f"{where}: the energy of {key!r} must be a number in eV, got "
                f"{energy!r}."
            )
        if not np.isfinite(energy):
            raise AtomicEnergiesError(f"{where}: the energy of {key!r} is {energy}.")
        if z in by_number:
            raise AtomicEnergiesError(
                f"{where}: {chemical_symbols[z]} (Z={z}) is given twice."
            )
        by_number[z] = float(energy)
    return dict(sorted(by_number.items()))


def _atomic_number(key: object, where: str) -> int:
    if isinstance(key, str) and key.strip().isdigit():
        key = int(key)
    if isinstance(key, int) and not isinstance(key, bool) and 1 <= key <= 118:
        return key
    if isinstance(key, str) and key.strip() in symbol_to_number:
        z = symbol_to_number[key.strip()]
        if z > 0:  # not the dummy "X"
            return z
    raise AtomicEnergiesError(
        f"{where}: {key!r} is not an element (give a symbol such as 'H' or an "
        "atomic number)."
    )


def parse_atomic_energies(text: str) -> tuple[dict[int, float], str]:
    """A map of reference energies from JSON text or a JSON file.

    Args:
        text: A JSON object ``{"H": -13.57, "6": -1025.3, ...}`` (keys: element
            symbols or atomic numbers; values in eV), or the path of a file
            holding one.

    Returns:
        ``({Z: E0 in eV}, source)`` with source "given" or "given in <file>".

    Raises:
        AtomicEnergiesError: The text is no JSON object and no readable file, or
            the map is bad (see :func:`atomic_energies_by_number`).
    """
    if is_json_map(text):
        where, source, content = "atomic energies", "given", text
    else:
        try:
            content = Path(text).read_text()
        except OSError as error:
            raise AtomicEnergiesError(
                f"atomic energies: {text!r} is neither a JSON map such as "
                f"'{{\"H\": -13.57}}' nor a readable file ({error})."
            ) from error
        where, source = text, f"given in {text}"
    try:
        energies = json.loads(content)
    except json.JSONDecodeError as error:
        raise AtomicEnergiesError(f"{where}: not valid JSON: {error}") from error
    if not isinstance(energies, dict) or not energies:
        raise AtomicEnergiesError(
            f"{where}: expected a non-empty JSON object {{element: energy in eV}}, "
            f"got {energies!r}."
        )
    return atomic_energies_by_number(energies, where), source


def reference_atomic_energies(
    elements: Collection[int],
    given: Mapping[int, float] | None,
    given_source: str,
    isolated: Mapping[int, float],
    isolated_source: str,
) -> tuple[dict[int, float], str] | None:
    """The E0 of the training elements from isolated atoms and a given map (the
    given map wins where both have an element), or None if there are neither.

    Args:
        elements: The atomic numbers of the training data.
        given: A given {Z: eV} map, or None.
        given_source: Its source in words (e.g. "given").
        isolated: The isolated atoms' {Z: eV}.
        isolated_source: Theirs (e.g. "isolated atoms in iso.xyz").

    Returns:
        ``({Z: E0 in eV} of exactly ``elements``, source in words)``.

    Raises:
        AtomicEnergiesError: An element of the training data has no E0 (naming
            the elements).
    """
    given = dict(given or {})
    if not given and not isolated:
        return None
    elements = sorted(elements)
    origin = {z: isolated_source for z in isolated} | {z: given_source for z in given}
    missing = [z for z in elements if z not in origin]
    if missing:
        names = ", ".join(chemical_symbols[z] for z in missing)
        raise AtomicEnergiesError(
            f"No reference energy (E0) for {names}, which the training data "
            f"contain ({'; '.join(sorted(set(origin.values())))} cover "
            f"{', '.join(chemical_symbols[z] for z in sorted(origin))}): give "
            "every element's isolated-atom energy or E0."
        )
    unused = sorted(set(origin) - set(elements))
    if unused:
        logger.info(
            "Reference energies of %s are not used: no training structure contains "
            "them.",
            ", ".join(chemical_symbols[z] for z in unused),
        )
    for z in elements:
        if z in given and z in isolated and abs(given[z] - isolated[z]) > 1e-6:
            logger.warning(
                "E0 of %s: the given %.6f eV is used, not the %.6f eV of the %s.",
                chemical_symbols[z],
                given[z],
                isolated[z],
                isolated_source,
            )
    energies = {z: given[z] if z in given else isolated[z] for z in elements}
    sources = dict.fromkeys(origin[z] for z in elements)
    if len(sources) == 1:
        return energies, next(iter(sources))
    by_source = {
        source: ", ".join(chemical_symbols[z] for z in elements if origin[z] == source)
        for source in sources
    }
    return energies, "; ".join(
        f"{source} ({names})" for source, names in by_source.items()
    )


def atomic_energies_table(dataset_info: DatasetInfo) -> np.ndarray:
    """The E0 of every data set and species in eV, [num_datasets, num_elements]."""
    return np.array(
        [list(energies.values()) for energies in dataset_info.atomic_energies_maps]
    )


def subtract_atomic_energies(graph: Graph, atomic_energies: np.ndarray) -> Graph:
    """The graph with its data set's E0 ([num_datasets, num_elements]) subtracted
    from its energy label."""
    e0 = atomic_energies[int(graph.dataset_idx[0])]
    formation = graph.energy - e0[graph.species].sum() * graph.has_energy
    return dataclasses.replace(graph, energy=formation)


def graphs_of_dataset(graphs: list[Graph], dataset_idx: int) -> list[Graph]:
    """The graphs whose ``dataset_idx`` is ``dataset_idx``."""
    return [graph for graph in graphs if int(graph.dataset_idx[0]) == dataset_idx]


def with_refitted_atomic_energies(
    dataset_info: DatasetInfo, train_graphs: list[Graph], datasets: Collection[int]
) -> DatasetInfo:
    """``dataset_info`` with E0 fitted to the training graphs of each of
    ``datasets`` (by ``dataset_idx``) for the elements they contain (the others,
    and the other data sets, keep theirs)."""
    elements = dataset_info.allowed_atomic_numbers
    maps = list(dataset_info.atomic_energies_maps)
    refitted_datasets = []
    for index in sorted(set(datasets)):
        if not 0 <= index < len(maps):
            raise ValueError(
                f"refit_atomic_energies: there is no data set {index} (the "
                f"DatasetInfo has {len(maps)})."
            )
        graphs = graphs_of_dataset(train_graphs, index)
        if not graphs:
            continue
        fitted = fit_atomic_energies(graphs, elements)
        present = set(np.concatenate([g.species for g in graphs]).tolist())
        old = maps[index]
        maps[index] = {
            z: fitted[z] if species in present else old[z]
            for species, z in enumerate(elements)
        }
        refitted_datasets.append(index)
        kept = [z for species, z in enumerate(elements) if species not in present]
        if kept:
            logger.warning(
                "refit_atomic_energies: data set %d has no training structure with "
                "element(s) %s, which keep their old reference energies (the new "
                "data's DFT setup may shift them).",
                index,
                kept,
            )
        logger.info(
            "Reference energies of data set %d (%s) refitted to its %d training "
            "structures (eV): %s",
            index,
            dataset_info.dataset_names[index] or "unnamed",
            len(graphs),
            ", ".join(f"Z={z}: {old[z]:.4f} -> {maps[index][z]:.4f}" for z in elements),
        )
    refitted = (
        maps[0]
        if len(maps) == 1 and not isinstance(dataset_info.atomic_energies_map, tuple)
        else tuple(maps)
    )
    source = dataset_info.atomic_energies_source
    if refitted_datasets:
        which = ", ".join(map(str, refitted_datasets))
        refit = f"{LEAST_SQUARES} refit of data set(s) {which}"
        source = refit if source is None else f"{source}; {refit}"
    return dataclasses.replace(
        dataset_info, atomic_energies_map=refitted, atomic_energies_source=source
    )


def map_as_json_text(value: object) -> object:
    """A dict (e.g. of a YAML or JSON config file) as its JSON text, for settings
    that hold a JSON map as text (so that a flag can give one); other values
    unchanged."""
    return json.dumps(value) if isinstance(value, dict) else value


def is_json_map(text: str) -> bool:
    """Whether settings text is a JSON object (else it names a file)."""
    return text.lstrip().startswith("{")
