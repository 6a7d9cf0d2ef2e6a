"""Physics checks of force fields (ours and a user's), for tests.

Each ``check_*`` function takes a :class:`ForceField` and structures, builds graphs
with the force field's own cutoff and element table, and asserts a physical law.
Finite-difference checks need a float64 force field (built and called under
``jax.enable_x64(True)``).
"""

import functools
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree

from mlip_eqx.data.chemical_system import ChemicalSystem
from mlip_eqx.data.graph_creation import graph_from_chemical_system, species_table
from mlip_eqx.graph import Graph, batch_graphs
from mlip_eqx.models import ForceField, Prediction


def assert_trees_close(
    actual, expected, rtol: float | int = 0, atol: float | int = 0
) -> None:
    """Asserts that two PyTrees have the same structure and close leaves."""
    actual_leaves, actual_tree = jax.tree.flatten(actual)
    expected_leaves, expected_tree = jax.tree.flatten(expected)
    assert actual_tree == expected_tree, (actual_tree, expected_tree)
    for actual_leaf, expected_leaf in zip(actual_leaves, expected_leaves):
        np.testing.assert_allclose(
            np.asarray(actual_leaf), np.asarray(expected_leaf), rtol=rtol, atol=atol
        )


class StructurePrediction(NamedTuple):
    """The prediction for one structure of a batch, as numpy (None if absent)."""

    energy: np.ndarray  # [] eV
    forces: np.ndarray  # [n_atoms, 3] eV/Å
    stress: np.ndarray | None  # [3, 3] eV/Å³
    pressure: np.ndarray | None  # [] eV/Å³


@eqx.filter_jit
def predict_graph(force_field: ForceField, graph: Graph) -> Prediction:
    """The jitted force field call shared by all tests (one compile per shape)."""
    return force_field(graph)


@eqx.filter_jit
def predict_energies(force_field: ForceField, graph: Graph) -> jax.Array:
    """The jitted ``force_field.energies`` (energies without forces)."""
    return force_field.energies(graph)


@eqx.filter_jit
@functools.partial(jax.grad, argnums=0)
def loss_gradient(params: PyTree, force_field: ForceField, graph: Graph) -> PyTree:
    """Gradient with respect to ``params`` of a loss of the energies, forces and
    (if predicted) stress of ``force_field.with_params(params)``, as in training."""
    prediction = force_field.with_params(params)(graph)
    loss = jnp.sum(prediction.energy**2) + jnp.sum(prediction.forces**2)
    if prediction.stress is not None:
        loss = loss + jnp.sum(prediction.stress**2)
    return loss


def make_graph(force_field: ForceField, system: ChemicalSystem) -> Graph:
    """The unpadded graph of one structure for this force field."""
    table = species_table(force_field.allowed_atomic_numbers)
    return graph_from_chemical_system(system, force_field.cutoff_distance, table)


BATCH_SIZES = {"n_node": 64, "n_edge": 2048, "n_graph": 8}
"""Padded sizes of every batch the checks evaluate, so that each force field is
compiled once for all of them."""


def make_batch(
    force_field: ForceField,
    systems: list[ChemicalSystem],
    n_node: int = BATCH_SIZES["n_node"],
    n_edge: int = BATCH_SIZES["n_edge"],
    n_graph: int = BATCH_SIZES["n_graph"],
) -> Graph:
    """The batch of structures padded to the given sizes."""
    graphs = [make_graph(force_field, system) for system in systems]
    return batch_graphs(graphs, n_node=n_node, n_edge=n_edge, n_graph=n_graph)


def groups_that_fit(
    force_field: ForceField, systems: list[ChemicalSystem], sizes: dict[str, int]
) -> list[list[ChemicalSystem]]:
    """Consecutive groups of the structures, each fitting one batch of ``sizes``."""
    groups, nodes, edges = [[]], 0, 0
    for system in systems:
        num_edges = make_graph(force_field, system).num_edges
        fits = (
            nodes + system.num_atoms < sizes["n_node"]
            and edges + num_edges <= sizes["n_edge"]
            and len(groups[-1]) + 1 < sizes["n_graph"]
        )
        if not fits and groups[-1]:
            groups.append([])
            nodes, edges = 0, 0
        groups[-1].append(system)
        nodes, edges = nodes + system.num_atoms, edges + num_edges
    return groups


def predict_each(
    force_field: ForceField, systems: list[ChemicalSystem], **sizes: int
) -> list[StructurePrediction]:
    """Predictions of structures, one per structure (numpy).

    The structures are evaluated in as few padded batches as fit the sizes.
    Padding entries are checked on the way: zero energy, forces and stress.

    Args:
        force_field: The force field.
        systems: The structures.
        **sizes: ``n_node``, ``n_edge``, ``n_graph`` of the batches, by default
            those of ``BATCH_SIZES``.
    """
    sizes = {**BATCH_SIZES, **sizes}
    results = []
    for group in groups_that_fit(force_field, systems, sizes):
        results.extend(_predict_batch(force_field, group, sizes))
    return results


def _predict_batch(
    force_field: ForceField, systems: list[ChemicalSystem], sizes: dict[str, int]
) -> list[StructurePrediction]:
    batch = make_batch(force_field, systems, **sizes)
    prediction = jax.tree.map(np.asarray, predict_graph(force_field, batch))
    for leaf in jax.tree.leaves(prediction):
        assert np.all(np.isfinite(leaf)), "non-finite prediction"
    node_mask, graph_mask = np.asarray(batch.node_mask), np.asarray(batch.graph_mask)
    np.testing.assert_array_equal(prediction.forces[~node_mask], 0.0)
    np.testing.assert_array_equal(prediction.energy[~graph_mask], 0.0)
    if prediction.stress is not None:
        np.testing.assert_array_equal(prediction.stress[~graph_mask], 0.0)
    results, start = [], 0
    for index, system in enumerate(systems):
        stop = start + system.num_atoms
        results.append(
            StructurePrediction(
                energy=prediction.energy[index],
                forces=prediction.forces[start:stop],
                stress=None if prediction.stress is None else prediction.stress[index],
                pressure=(
                    None if prediction.pressure is None else prediction.pressure[index]
                ),
            )
        )
        start = stop
    return results


def transformed(
    system: ChemicalSystem,
    orthogonal: np.ndarray,
    translation: np.ndarray,
    permutation: np.ndarray,
) -> ChemicalSystem:
    """The structure moved by x -> Q x + t, with its atoms reordered."""
    positions = system.positions @ orthogonal.T + translation
    return ChemicalSystem(
        atomic_numbers=system.atomic_numbers[permutation],
        positions=positions[permutation],
        cell=system.cell @ orthogonal.T,
        pbc=system.pbc,
    )


def random_orthogonal(rng: np.random.Generator, reflect: bool) -> np.ndarray:
    """A random rotation, times -1 (a reflection) if ``reflect``."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation = q * np.sign(np.diag(r))
    if np.linalg.det(rotation) < 0:
        rotation[:, 0] *= -1
    return -rotation if reflect else rotation


def check_invariance(
    force_field: ForceField,
    system: ChemicalSystem,
    rng: np.random.Generator,
    reflect: bool,
    rtol: float,
    atol: float,
    **sizes: int,
) -> None:
    """Energy invariant; forces and stress equivariant under a random rotation
    (or rotation-reflection), translation and permutation of the atoms.

    ``sizes`` are passed to :func:`predict_each`.
    """
    orthogonal = random_orthogonal(rng, reflect)
    translation = rng.normal(size=3) * 3.0
    permutation = rng.permutation(system.num_atoms)
    moved = transformed(system, orthogonal, translation, permutation)
    before, after = predict_each(force_field, [system, moved], **sizes)
    expected = StructurePrediction(
        energy=before.energy,
        forces=(before.forces @ orthogonal.T)[permutation],
        stress=(
            None if before.stress is None else orthogonal @ before.stress @ orthogonal.T
        ),
        pressure=before.pressure,
    )
    assert_trees_close(after, expected, rtol=rtol, atol=atol)


def strained(system: ChemicalSystem, strain: np.ndarray) -> ChemicalSystem:
    """The structure with positions and cell deformed by x -> x (1 + strain)."""
    deformation = np.eye(3) + strain
    return ChemicalSystem(
        atomic_numbers=system.atomic_numbers,
        positions=system.positions @ deformation,
        cell=system.cell @ deformation,
        pbc=system.pbc,
    )


def finite_difference_stress(energy_of, system: ChemicalSystem, step: float):
    """(1/V) dE/dε by central differences of symmetric strains ε, in eV/Å³.

    Args:
        energy_of: Maps a ChemicalSystem to its energy in eV.
        system: A periodic structure.
        step: Strain step (dimensionless).
    """
    volume = abs(np.linalg.det(system.cell))
    stress = np.zeros((3, 3))
    for i in range(3):
        for j in range(i, 3):
            strain = np.zeros((3, 3))
            strain[i, j] += step / 2
            strain[j, i] += step / 2
            plus = energy_of(strained(system, strain))
            minus = energy_of(strained(system, -strain))
            stress[i, j] = stress[j, i] = (plus - minus) / (2 * step * volume)
    return stress


def displaced(system: ChemicalSystem, atom: int, axis: int, step: float):
    """The structure with one coordinate of one atom moved by ``step`` Å."""
    positions = system.positions.copy()
    positions[atom, axis] += step
    return ChemicalSystem(
        atomic_numbers=system.atomic_numbers,
        positions=positions,
        cell=system.cell,
        pbc=system.pbc,
    )


def energies(force_field: ForceField, systems: list[ChemicalSystem]) -> np.ndarray:
    """Energies of structures in eV, evaluated in one batch."""
    return np.array([p.energy for p in predict_each(force_field, systems)])


def check_forces_are_energy_gradient(
    force_field: ForceField,
    system: ChemicalSystem,
    step: float,
    rtol: float,
    atol: float,
) -> None:
    """Forces equal minus the central finite-difference gradient of the energy."""
    (prediction,) = predict_each(force_field, [system])
    moved = [
        displaced(system, atom, axis, sign * step)
        for atom in range(system.num_atoms)
        for axis in range(3)
        for sign in (1.0, -1.0)
    ]
    values = energies(force_field, moved).reshape(system.num_atoms, 3, 2)
    gradient = (values[..., 0] - values[..., 1]) / (2 * step)
    np.testing.assert_allclose(prediction.forces, -gradient, rtol=rtol, atol=atol)


def check_stress_is_strain_derivative(
    force_field: ForceField,
    system: ChemicalSystem,
    step: float,
    rtol: float,
    atol: float,
) -> None:
    """Stress equals the finite-difference strain derivative of the energy over V,
    and pressure is minus a third of its trace."""
    (prediction,) = predict_each(force_field, [system])

    def energy_of(strained_system: ChemicalSystem) -> float:
        return float(energies(force_field, [strained_system])[0])

    expected = finite_difference_stress(energy_of, system, step)
    np.testing.assert_allclose(prediction.stress, expected, rtol=rtol, atol=atol)
    np.testing.assert_allclose(
        prediction.pressure, -np.trace(prediction.stress) / 3, rtol=1e-12, atol=1e-15
    )


def check_continuity_at_cutoff(
    force_field: ForceField,
    atomic_numbers: tuple[int, int, int],
    step: float,
    energy_tolerance: float,
    force_tolerance: float,
) -> None:
    """Energy and forces change continuously as an atom leaves another's cutoff.

    A third atom moves away from the first along a line, always farther from the
    second; at distance cutoff - step it has one edge, at cutoff + step it is
    isolated, and energy and forces must agree to within tolerances far below
    their change over the last 0.5 Å.
    """
    cutoff = force_field.cutoff_distance
    direction = np.array([0.6, 0.0, 0.8])

    def molecule(distance: float) -> ChemicalSystem:
        positions = np.array(
            [[0.0, 0.0, 0.0], [-1.4, -1.1, 0.0], list(distance * direction)]
        )
        return ChemicalSystem(
            atomic_numbers=np.array(atomic_numbers), positions=positions
        )

    inside, outside, far_inside = predict_each(
        force_field,
        [molecule(cutoff - step), molecule(cutoff + step), molecule(cutoff - 0.5)],
    )
    assert make_graph(force_field, molecule(cutoff - step)).num_edges == (
        make_graph(force_field, molecule(cutoff + step)).num_edges + 2
    ), "the moving atom does not cross the cutoff"
    assert abs(far_inside.energy - outside.energy) > 100 * energy_tolerance, (
        "the moving atom does not change the energy: the check would be vacuous"
    )
    assert abs(inside.energy - outside.energy) < energy_tolerance
    np.testing.assert_allclose(inside.forces, outside.forces, atol=force_tolerance)
