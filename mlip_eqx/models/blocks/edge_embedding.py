"""The edge features that message-passing networks start from: radial basis of
the lengths and spherical harmonics of the directions, once per pair."""

from collections.abc import Callable

import jax.numpy as jnp
from jaxtyping import Array, Float

from mlip_eqx.models.blocks.harmonics import edge_harmonics, parity_signs
from mlip_eqx.models.blocks.radial import radial_embedding, safe_norm


def for_both_edges(
    pair_values: Float[Array, " n_pair *rest"],
) -> Float[Array, " n_edge *rest"]:
    """The values of every edge, from those of the pairs, in the paired layout
    (edge ``k + n_edge / 2`` reverses edge ``k``): the pairs' values twice."""
    return jnp.concatenate([pair_values, pair_values])


def embed_edges(
    edge_vectors: Float[Array, "n_edge 3"],
    *,
    paired_edges: bool,
    cutoff: float,
    num_basis: int,
    envelope: str,
    r_min: float | None,
    l_max: int,
    reverse_directions: bool = False,
    envelope_power: int = 5,
    transform: Callable[[Array], Array] | None = None,
) -> tuple[Float[Array, "n_radial num_basis"], Float[Array, "n_edge harmonics"]]:
    """Radial features and spherical harmonics of the edges.

    With ``paired_edges`` (edge ``k + n_edge / 2`` reverses edge ``k``, see
    ``Graph``), the radial features are computed for the first half only (the
    second half repeats them) and the reversed edges' harmonics are the
    pair's times (-1)^l. Zero-length (padding) edges get zero radial features
    and the harmonics of an arbitrary direction.

    Args:
        edge_vectors: Vectors from sender to receiver in Å (the network's dtype).
        paired_edges: Whether the edges have the paired layout.
        cutoff: Cutoff in Å.
        num_basis: Number of radial basis functions.
        envelope: The radial envelope's name.
        r_min: Typical shortest edge in Å for the radial normalisation, or None.
        l_max: Highest degree of the harmonics.
        reverse_directions: Evaluate the harmonics of the reversed vectors
            (receiver to sender), as MACE does.
        envelope_power: Power p of the polynomial envelope.
        transform: Maps the lengths of the edges the radial features are
            computed for (the first half of paired edges) to those the radial
            basis takes (see :func:`~mlip_eqx.models.blocks.radial.
            radial_embedding`).

    Returns:
        Radial features [n_edge or n_edge / 2, num_basis] and harmonics
        [n_edge, (l_max + 1)^2].
    """
    vectors = (
        edge_vectors[: edge_vectors.shape[0] // 2] if paired_edges else edge_vectors
    )
    lengths, is_zero = safe_norm(vectors)
    radial_features = radial_embedding(
        lengths,
        is_zero,
        cutoff=cutoff,
        num_basis=num_basis,
        envelope=envelope,
        r_min=r_min,
        envelope_power=envelope_power,
        transform=transform,
    )
    directions = jnp.where(is_zero[:, None], 1.0, vectors)
    harmonics = edge_harmonics(-directions if reverse_directions else directions, l_max)
    if paired_edges:
        signs = parity_signs(l_max, harmonics.dtype)
        harmonics = jnp.concatenate([harmonics, harmonics * signs])
    return radial_features, harmonics
