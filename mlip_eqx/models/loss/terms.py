"""Per-graph error terms of energies, forces and stress (pure functions)."""

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

HUBER_DELTA = 0.01
# Force Huber delta factors for reference |F| in [0, 100), [100, 200), [200, 300)
# and above (eV/Å), as in the original library.
FORCE_HUBER_FACTORS = (1.0, 0.7, 0.4, 0.1)
FORCE_HUBER_BOUNDARIES = (100.0, 200.0, 300.0)


def safe_divide(numerator: Array, denominator: Array) -> Array:
    """numerator / denominator, and 0 where the denominator is 0 (no NaN)."""
    is_zero = denominator == 0
    return jnp.where(is_zero, 0.0, numerator / jnp.where(is_zero, 1.0, denominator))


def per_graph_mean_over_nodes(
    node_values: Float[Array, " n_node"],
    node_graph: Int[Array, " n_node"],
    n_node: Int[Array, " n_graph"],
) -> Float[Array, " n_graph"]:
    """Mean of a per-node quantity over the nodes of each graph (0 if none)."""
    sums = jax.ops.segment_sum(node_values, node_graph, num_segments=n_node.shape[0])
    return safe_divide(sums, n_node.astype(sums.dtype))


def squared_error_energy_per_atom(
    predicted: Float[Array, " n_graph"],
    reference: Float[Array, " n_graph"],
    n_node: Int[Array, " n_graph"],
) -> Float[Array, " n_graph"]:
    """((E_ref - E_pred) / n_atoms)^2 per graph, in eV²."""
    return jnp.square(
        safe_divide(reference - predicted, n_node.astype(predicted.dtype))
    )


def huber_energy_per_atom(
    predicted: Float[Array, " n_graph"],
    reference: Float[Array, " n_graph"],
    n_node: Int[Array, " n_graph"],
) -> Float[Array, " n_graph"]:
    """Huber loss (delta 0.01 eV) of the energy per atom, per graph."""
    count = n_node.astype(predicted.dtype)
    return optax.losses.huber_loss(
        safe_divide(predicted, count), safe_divide(reference, count), delta=HUBER_DELTA
    )


def squared_error_forces(
    predicted: Float[Array, "n_node 3"], reference: Float[Array, "n_node 3"]
) -> Float[Array, " n_node"]:
    """Mean over x, y, z of the squared force error per node, in (eV/Å)²."""
    return jnp.mean(jnp.square(reference - predicted), axis=-1)


def adaptive_huber_forces(
    predicted: Float[Array, "n_node 3"], reference: Float[Array, "n_node 3"]
) -> Float[Array, " n_node"]:
    """Mean over x, y, z of a Huber loss whose delta shrinks as |F_ref| grows.

    delta = 0.01 * (1.0, 0.7, 0.4, 0.1) for |F_ref| < 100, < 200, < 300 and above
    (eV/Å).
    """
    norms = jnp.linalg.norm(reference, axis=-1)
    factors = jnp.asarray(FORCE_HUBER_FACTORS, predicted.dtype)
    interval = jnp.searchsorted(
        jnp.asarray(FORCE_HUBER_BOUNDARIES, norms.dtype), norms, side="right"
    )
    delta = HUBER_DELTA * factors[interval][:, None]
    errors = jnp.abs(predicted - reference)
    huber = jnp.where(errors <= delta, 0.5 * errors**2, delta * (errors - 0.5 * delta))
    return jnp.mean(huber, axis=-1)


def squared_error_stress(
    predicted: Float[Array, "n_graph 3 3"], reference: Float[Array, "n_graph 3 3"]
) -> Float[Array, " n_graph"]:
    """Mean over the 9 components of the squared stress error, in (eV/Å³)²."""
    return jnp.mean(jnp.square(reference - predicted), axis=(-2, -1))


def huber_stress(
    predicted: Float[Array, "n_graph 3 3"], reference: Float[Array, "n_graph 3 3"]
) -> Float[Array, " n_graph"]:
    """Mean over the 9 components of the Huber loss (delta 0.01) of the stress."""
    return jnp.mean(
        optax.losses.huber_loss(predicted, reference, delta=HUBER_DELTA), axis=(-2, -1)
    )
