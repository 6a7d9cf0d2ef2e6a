"""Prediction: what a force field returns for a batch of graphs."""

import equinox as eqx
from jaxtyping import Array, Float


class Prediction(eqx.Module):
    """Energies, forces and (optionally) stress of a batch of graphs.

    Quantities that the force field was not asked to predict are ``None`` (never
    zeros), so that losses and metrics can skip them. Padding nodes and graphs get
    zeros.

    Attributes:
        energy: Total energy per graph in eV, [n_graph].
        forces: Forces (minus the energy gradient) in eV/Å, [n_node, 3].
        stress: Stress in eV/Å³ with ASE's sign convention, (1/V) dE/dε for a
            symmetric strain ε, [n_graph, 3, 3]; None unless stress is predicted.
        pressure: Pressure -trace(stress)/3 in eV/Å³, [n_graph]; None unless stress is
            predicted.
    """

    energy: Float[Array, " n_graph"]
    forces: Float[Array, "n_node 3"]
    stress: Float[Array, "n_graph 3 3"] | None = None
    pressure: Float[Array, " n_graph"] | None = None
