"""Radial functions of the edge length: Bessel and exp-normal bases, envelopes,
cutoffs, safe norms."""

import functools
from collections.abc import Callable
from typing import Literal

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

RadialEnvelope = Literal["polynomial_envelope", "soft_envelope"]


def safe_norm(
    vectors: Float[Array, "*batch components"],
) -> tuple[Float[Array, "*batch"], Bool[Array, "*batch"]]:
    """Euclidean norms over the last axis with finite, zero gradients (of every
    order) for zero vectors.

    Args:
        vectors: Vectors along the last axis, e.g. edge vectors in Å.

    Returns:
        (norms, in the vectors' unit; mask that is True where a vector is exactly
        zero).
    """
    squared = jnp.sum(vectors**2, axis=-1)
    is_zero = squared == 0.0
    lengths = jnp.sqrt(jnp.where(is_zero, 1.0, squared))
    return jnp.where(is_zero, 0.0, lengths), is_zero


def bessel_basis(
    lengths: Float[Array, " n_edge"], cutoff: float, num_basis: int
) -> Float[Array, "n_edge num_basis"]:
    """Bessel functions sqrt(2/c) sin(n pi r / c) / r, n = 1..num_basis.

    Args:
        lengths: Edge lengths r in Å; must be > 0 (callers mask zero lengths).
        cutoff: Cutoff c in Å.
        num_basis: Number of basis functions.

    Returns:
        The basis evaluated at each length.
    """
    frequencies = jnp.arange(1, num_basis + 1, dtype=lengths.dtype) * jnp.pi / cutoff
    radii = lengths[:, None]
    return np.sqrt(2.0 / cutoff) * jnp.sin(frequencies * radii) / radii


def polynomial_envelope(
    lengths: Float[Array, " n_edge"],
    cutoff: float | Float[Array, " n_edge"],
    power: int = 5,
) -> Float[Array, " n_edge"]:
    """Polynomial cutoff of Klicpera et al. (ICLR 2020, eq. 8), zero beyond cutoff.

    The envelope and its first two derivatives vanish at the cutoff.

    Args:
        lengths: Edge lengths in Å.
        cutoff: Cutoff in Å, one for all lengths or one per length.
        power: Degree p of the leading term.

    Returns:
        The envelope, 1 at r = 0 and 0 for r >= cutoff.
    """
    x = lengths / cutoff
    p = float(power)
    envelope = (
        1.0
        - (p + 1.0) * (p + 2.0) / 2.0 * x**power
        + p * (p + 2.0) * x ** (power + 1)
        - p * (p + 1.0) / 2.0 * x ** (power + 2)
    )
    return jnp.where(x < 1.0, envelope, 0.0)


def soft_envelope(
    lengths: Float[Array, " n_edge"], cutoff: float
) -> Float[Array, " n_edge"]:
    """Smooth (C-infinity) envelope of e3nn, 1.2 at r = 0 and 0 for r >= cutoff.

    Args:
        lengths: Edge lengths in Å.
        cutoff: Cutoff in Å.

    Returns:
        The envelope at each length.
    """
    return e3nn.soft_envelope(
        lengths, cutoff, arg_multiplicator=2.0, value_at_origin=1.2
    )


def cosine_cutoff(lengths: Float[Array, "..."], cutoff: float) -> Float[Array, "..."]:
    """(cos(pi r / c) + 1) / 2 for r < c, else 0: 1 at r = 0; only its value and
    first derivative vanish at the cutoff (C1).

    Args:
        lengths: Edge lengths r in Å.
        cutoff: Cutoff c in Å.

    Returns:
        The cutoff function at each length.
    """
    values = 0.5 * (jnp.cos(lengths * (jnp.pi / cutoff)) + 1.0)
    return jnp.where(lengths < cutoff, values, 0.0)


def expnorm_parameters(cutoff: float, num_basis: int) -> tuple[np.ndarray, np.ndarray]:
    """Initial centres and widths of :func:`expnorm_basis` (as in TorchMD-Net and
    mlip): centres evenly spaced in exp(-r) from exp(-c) to 1, all widths
    (2 (1 - exp(-c)) / num_basis)^-2.

    Args:
        cutoff: Cutoff c in Å.
        num_basis: Number of basis functions.

    Returns:
        (centres, widths), each [num_basis], float64.
    """
    start = np.exp(-cutoff)
    centres = np.linspace(start, 1.0, num_basis)
    widths = np.full(num_basis, (2.0 / num_basis * (1.0 - start)) ** -2)
    return centres, widths


def expnorm_basis(
    lengths: Float[Array, " n_edge"],
    cutoff: float,
    centres: Float[Array, " num_basis"],
    widths: Float[Array, " num_basis"],
) -> Float[Array, "n_edge num_basis"]:
    """Exponential-normal radial basis (PhysNet, TorchMD-Net) times the cosine
    cutoff: cosine_cutoff(r) exp(-widths (exp(-5 r / c) - centres)^2).

    Args:
        lengths: Edge lengths r in Å.
        cutoff: Cutoff c in Å.
        centres: Centre of each function in exp(-5 r / c) (dimensionless).
        widths: Inverse squared width of each function (dimensionless).

    Returns:
        The basis at each length, zero beyond the cutoff.
    """
    radii = lengths[:, None]
    shifted = jnp.exp(-(5.0 / cutoff) * radii) - centres
    return cosine_cutoff(radii, cutoff) * jnp.exp(-widths * shifted**2)


ENVELOPES: dict[str, Callable[..., Array]] = {
    "polynomial_envelope": polynomial_envelope,
    "soft_envelope": soft_envelope,
}


@functools.lru_cache(maxsize=64)
def _embedding_scale(
    envelope: str,
    cutoff: float,
    num_basis: int,
    r_min: float | None,
    envelope_power: int,
) -> float:
    if r_min is None:
        return 1.0
    with jax.ensure_compile_time_eval():
        samples = jnp.linspace(r_min, cutoff, 1000, dtype=jnp.float32)
        values = _enveloped_bessel(samples, envelope, cutoff, num_basis, envelope_power)
        return float(jnp.mean(values**2)) ** -0.5


def _enveloped_bessel(
    lengths: Float[Array, " n_edge"],
    envelope: str,
    cutoff: float,
    num_basis: int,
    envelope_power: int,
    basis_lengths: Float[Array, " n_edge"] | None = None,
) -> Float[Array, "n_edge num_basis"]:
    basis = bessel_basis(
        lengths if basis_lengths is None else basis_lengths, cutoff, num_basis
    )
    if envelope == "polynomial_envelope":
        values = polynomial_envelope(lengths, cutoff, envelope_power)
    else:
        values = ENVELOPES[envelope](lengths, cutoff)
    return basis * values[:, None]


def radial_embedding(
    lengths: Float[Array, " n_edge"],
    is_zero: Bool[Array, " n_edge"],
    *,
    cutoff: float,
    num_basis: int,
    envelope: RadialEnvelope,
    r_min: float | None,
    envelope_power: int = 5,
    transform: Callable[[Array], Array] | None = None,
) -> Float[Array, "n_edge num_basis"]:
    """Bessel basis times envelope, zero for zero-length (padding) edges.

    When ``r_min`` is given, the embedding is scaled so that its mean square over
    lengths uniform in [r_min, cutoff] is 1 (that of the untransformed basis).

    Args:
        lengths: Edge lengths in Å.
        is_zero: True for edges of zero length (padding), which get zeros.
        cutoff: Cutoff in Å.
        num_basis: Number of Bessel functions.
        envelope: Name of the envelope.
        r_min: Typical shortest edge length in Å, or None for no rescaling.
        envelope_power: Power p of the polynomial envelope (ignored by the
            others).
        transform: Maps the (non-zero) lengths to those the Bessel basis is
            evaluated at (e.g. :func:`~mlip_eqx.models.blocks.pair_terms.
            transformed_lengths`); the envelope still takes the lengths.

    Returns:
        The radial features of each edge.
    """
    safe_lengths = jnp.where(is_zero, cutoff, lengths)
    values = _enveloped_bessel(
        safe_lengths,
        envelope,
        cutoff,
        num_basis,
        envelope_power,
        None if transform is None else transform(safe_lengths),
    )
    scale = _embedding_scale(envelope, float(cutoff), num_basis, r_min, envelope_power)
    return jnp.where(is_zero[:, None], 0.0, scale * values)
