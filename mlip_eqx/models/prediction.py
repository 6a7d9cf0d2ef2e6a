"""Prediction: what a force field returns for a batch of graphs or one structure."""

import equinox as eqx
from jaxtyping import Float

from mlip_eqx.graph.graph import ArrayLike


class Prediction(eqx.Module):
    """Energies, forces and (optionally) stress of a batch of graphs, or of one
    structure.

    A force field returns it for a padded batch (jax arrays, a leading graph axis;
    padding nodes and graphs get zeros);
    :func:`~mlip_eqx.inference.run_batched_inference` returns one per structure on
    the host (energy and pressure floats, forces and stress numpy arrays, no graph
    axis). Quantities that the force field was not asked to predict are ``None``
    (never zeros), so that losses and metrics can skip them.

    Attributes:
        energy: Total energy in eV, per graph [n_graph] (or a float).
        forces: Forces (minus the energy gradient) in eV/Å, [n_node, 3].
        stress: Stress in eV/Å³ with ASE's sign convention, (1/V) dE/dε for a
            symmetric strain ε, [n_graph, 3, 3] (or [3, 3]); None unless stress is
            predicted.
        pressure: Pressure -trace(stress)/3 in eV/Å³, [n_graph] (or a float); None
            unless stress is predicted.
        stress_cell: The part of the stress that acts through the cell,
            (1/V) (dE/dh)ᵀ h for the lattice vectors h (rows) at fixed Cartesian
            positions, in eV/Å³, [n_graph, 3, 3] (or [3, 3]); None unless stress
            is predicted.
        stress_forces: The part that acts through the atoms,
            (1/V) Σᵢ (dE/dxᵢ) ⊗ xᵢ = -(1/V) Σᵢ Fᵢ ⊗ xᵢ, in eV/Å³; None unless
            stress is predicted. ``stress_cell + stress_forces`` is the virial
            over the volume, which equals ``stress`` (its symmetric part, up to
            rounding, for a rotation-invariant energy); each part alone depends on
            the origin and on which periodic images the edges use. The original
            library (0.1.0 to 0.1.3) had these fields with the opposite sign (its
            stress had the opposite sign of ASE's; ours follow ASE's, as
            ``stress``); padding graphs and graphs without a cell get zeros.
    """

    energy: Float[ArrayLike, " *n_graph"] | float
    forces: Float[ArrayLike, "n_node 3"]
    stress: Float[ArrayLike, "*n_graph 3 3"] | None = None
    pressure: Float[ArrayLike, " *n_graph"] | float | None = None
    stress_cell: Float[ArrayLike, "*n_graph 3 3"] | None = None
    stress_forces: Float[ArrayLike, "*n_graph 3 3"] | None = None
