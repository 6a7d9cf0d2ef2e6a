"""Terms of an edge that depend on the species of its two atoms through their
covalent radii: the transforms of the length that mace-torch feeds to its radial
basis (the Agnesi transform of ACEpotentials.jl, the soft transform), and the
Ziegler-Biersack-Littmark (ZBL) pair repulsion of mace-torch's MACE-MP-0b and
later foundation models.

The constants are those of mace-torch 0.3.16 (``mace.modules.radial``), so that
converted models predict as mace-torch's; the radii are ASE's covalent radii.
"""

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from ase.data import covalent_radii
from jaxtyping import Array, Float, Int

from mlip_eqx.models.blocks.radial import polynomial_envelope, safe_norm

DistanceTransform = Literal["none", "agnesi", "soft"]

AGNESI_Q, AGNESI_P, AGNESI_A = 0.9183, 4.5791, 1.0805
SOFT_ALPHA = 4.0
ZBL_COEFFICIENTS = (0.1818, 0.5099, 0.2802, 0.02817)
ZBL_EXPONENTS = (3.2, 0.9423, 0.4028, 0.2016)
ZBL_SCREENING_PREFACTOR = 0.4543 * 0.529  # Å, the universal screening length
ZBL_SCREENING_EXPONENT = 0.300
COULOMB_EV_ANGSTROM = 14.3996  # e^2 / (4 pi eps0) in eV Å, as mace-torch


def species_atomic_numbers(
    allowed_atomic_numbers: list[int], num_species: int
) -> np.ndarray:
    """The atomic number of every species slot; slots beyond the data set's
    elements (a larger ``num_species``) repeat the last element."""
    numbers = list(allowed_atomic_numbers)
    numbers += numbers[-1:] * (num_species - len(numbers))
    return np.asarray(numbers[:num_species], dtype=np.int32)


def species_covalent_radii(atomic_numbers: np.ndarray) -> np.ndarray:
    """ASE's covalent radius in Å of every atomic number, float64."""
    return np.asarray(covalent_radii, dtype=np.float64)[atomic_numbers]


def transformed_lengths(
    lengths: Float[Array, " n_edge"],
    radii_sum: Float[Array, " n_edge"],
    transform: DistanceTransform,
) -> Float[Array, " n_edge"]:
    """The length fed to the radial basis in place of the edge length.

    Args:
        lengths: Edge lengths in Å, > 0 (callers replace padding lengths).
        radii_sum: Sum of the covalent radii of each edge's two atoms in Å.
        transform: "agnesi": ``1 / (1 + a x^q / (1 + x^(q - p)))`` with
            ``x = 2 r / radii_sum`` (dimensionless, 1 at r = 0, falling to 0);
            "soft": ``p0 + (r - p0) (1 + tanh(alpha (r - m))) / 2`` with
            ``p0 = 3/4 radii_sum``, ``p1 = 4/3 radii_sum``, ``m = (p0 + p1) / 2``,
            ``alpha = 4 / (p1 - p0)`` (r clamped smoothly to p0 below it);
            "none": the lengths.
    """
    if transform == "agnesi":
        x = lengths / (0.5 * radii_sum)
        return 1.0 / (1.0 + AGNESI_A * x**AGNESI_Q / (1.0 + x ** (AGNESI_Q - AGNESI_P)))
    if transform == "soft":
        low, high = 0.75 * radii_sum, 4.0 / 3.0 * radii_sum
        steepness = SOFT_ALPHA / (high - low)
        switch = 0.5 * (1.0 + jnp.tanh(steepness * (lengths - 0.5 * (low + high))))
        return low + (lengths - low) * switch
    return lengths


def zbl_node_energies(
    edge_vectors: Float[Array, "n_edge 3"],
    senders: Int[Array, " n_edge"],
    receivers: Int[Array, " n_edge"],
    node_atomic_numbers: Int[Array, " n_node"],
    envelope_power: int,
) -> Float[Array, " n_node"]:
    """ZBL repulsion in eV of every node: half of each edge's pair energy goes
    to its receiver (every pair has both edges).

    The pair energy ``14.3996 Z_u Z_v / r * sum_i c_i exp(-d_i r / a)``, with
    ``a = 0.4543 * 0.529 / (Z_u^0.3 + Z_v^0.3)``, is multiplied by the
    polynomial envelope (power ``envelope_power``) with cutoff the sum of the
    two covalent radii. Zero-length (padding) edges contribute nothing.

    Args:
        edge_vectors: Vectors from sender to receiver in Å.
        senders: Sending node of each edge.
        receivers: Receiving node of each edge.
        node_atomic_numbers: Atomic number of every node.
        envelope_power: Power p of the envelope (mace-torch's
            ``num_polynomial_cutoff``).
    """
    dtype = edge_vectors.dtype
    lengths, is_zero = safe_norm(edge_vectors)
    safe_lengths = jnp.where(is_zero, 1.0, lengths)
    z_sender = node_atomic_numbers[senders].astype(dtype)
    z_receiver = node_atomic_numbers[receivers].astype(dtype)
    screening = ZBL_SCREENING_PREFACTOR / (
        z_sender**ZBL_SCREENING_EXPONENT + z_receiver**ZBL_SCREENING_EXPONENT
    )
    reduced = safe_lengths / screening
    screening_function = sum(
        c * jnp.exp(-d * reduced)
        for c, d in zip(ZBL_COEFFICIENTS, ZBL_EXPONENTS, strict=True)
    )
    pair = COULOMB_EV_ANGSTROM * z_sender * z_receiver * screening_function
    pair = pair / safe_lengths
    radii = jnp.asarray(covalent_radii, dtype)
    reach = radii[node_atomic_numbers[senders]] + radii[node_atomic_numbers[receivers]]
    pair = 0.5 * pair * polynomial_envelope(safe_lengths, reach, envelope_power)
    pair = jnp.where(is_zero, 0.0, pair)
    return jax.ops.segment_sum(
        pair, receivers, num_segments=node_atomic_numbers.shape[0]
    )
