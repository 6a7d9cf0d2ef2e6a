"""mlip 0.2's symmetric contraction on e3j (its default backend) into ours.

e3j's ``PowerExpansion`` computes, for each channel, the powers x, x⊗x, ... of
the channel's features x (one irrep each of ``source``) up to the correlation:
each power is the channel-wise, unweighted Clebsch-Gordan product of the previous
(unfiltered) power with x, its blocks generated per (block of the previous power,
irrep of x, output degree ascending), sorted stably by irrep and regrouped; blocks
that can no longer reach a kept irrep are dropped. The powers, filtered to the
kept irreps, are concatenated and sorted stably by irrep, and one species- and
channel-wise weight vector per kept irrep (an e3j ``LinearIndexwise``, stored
[species, channel, 1, features]) combines all orders' features of that irrep.

Each order's features are homogeneous polynomials of that degree spanning (with
repetitions: x_a⊗x_b and x_b⊗x_a are the same function) the equivariant maps of
the symmetric power, the space our symmetric basis spans. So e3j's weights have an
exact equivalent in ours: the features are expressed in our symmetric basis by
least squares on random samples (``e3j_power_features`` reimplements e3j's powers
in numpy), which turns e3j's weights into effective symmetric-basis weights, then
into ours (:meth:`SymmetricContraction.weights_from_symmetric`).
"""

import e3nn_jax as e3nn
import numpy as np

from mlip_eqx.models.mace.symmetric_contraction import (
    SymmetricContraction,
    symmetric_basis_size,
)

_TOLERANCE = 1e-9


def _sort_key(ir: e3nn.Irrep) -> tuple[int, int]:
    """e3j's order of irreps: by degree, the parity (-1)^l first."""
    return ir.l, 0 if ir.p == (-1) ** ir.l else 1


def _reachable(
    source: list[e3nn.Irrep], keep: set[e3nn.Irrep], correlation: int, power: int
) -> set[e3nn.Irrep]:
    """The irreps of the power ``power`` that can still reach a kept irrep in the
    remaining products with the source."""
    reachable, frontier = set(keep), set(keep)
    for _ in range(correlation - power):
        frontier = {ir for target in frontier for s in source for ir in target * s}
        reachable |= frontier
    return reachable


def e3j_power_features(
    samples: np.ndarray, source: e3nn.Irreps, keep: e3nn.Irreps, correlation: int
) -> list[dict[str, np.ndarray]]:
    """e3j's power features of each order, in its order, filtered to ``keep``.

    Args:
        samples: One channel's features, [N, source.dim].
        source: Irreps of one channel (multiplicity 1 each, e3j's order).
        keep: The kept output irreps.
        correlation: Highest order.

    Returns:
        For each order 1..correlation, kept irrep (str) -> [N, features, ir.dim]
        (float64).
    """
    samples = np.asarray(samples, np.float64)
    irreps = [ir for _, ir in source]
    keep_set = {ir for _, ir in keep}
    first = [
        (ir, samples[:, None, block]) for ir, block in zip(irreps, source.slices())
    ]
    powers, hidden = [first], first
    for power in range(2, correlation + 1):
        allowed = _reachable(irreps, keep_set, correlation, power)
        blocks = []
        for ir1, lhs in hidden:
            for ir2, (_, rhs) in zip(irreps, first):
                for ir0 in ir1 * ir2:
                    if ir0 in allowed:
                        cg = np.asarray(e3nn.clebsch_gordan(ir0.l, ir1.l, ir2.l))
                        product = np.einsum("ijk,nmj,nk->nmi", cg, lhs, rhs[:, 0])
                        blocks.append((ir0, product))
        order = sorted(range(len(blocks)), key=lambda i: (_sort_key(blocks[i][0]), i))
        hidden = []
        for i in order:
            ir, block = blocks[i]
            if hidden and hidden[-1][0] == ir:
                hidden[-1] = (ir, np.concatenate([hidden[-1][1], block], axis=1))
            else:
                hidden.append((ir, block))
        powers.append(hidden)
    return [
        {str(ir): block for ir, block in power if ir in keep_set} for power in powers
    ]


def e3j_power_counts(
    source: e3nn.Irreps, keep: e3nn.Irreps, correlation: int
) -> list[dict[str, int]]:
    """The number of e3j's features of each order and kept irrep."""
    features = e3j_power_features(np.zeros((1, source.dim)), source, keep, correlation)
    return [{ir: block.shape[1] for ir, block in power.items()} for power in features]


def contraction_weights_from_e3j(
    contraction: SymmetricContraction,
    source: e3nn.Irreps,
    keep: e3nn.Irreps,
    weights: dict[str, tuple[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Our contraction's weights that compute e3j's contraction.

    Args:
        contraction: Ours (its ``irreps_in`` must be among ``source``; the other
            source irreps are taken to be zero).
        source: e3j's irreps of one channel.
        keep: e3j's kept irreps.
        weights: Kept irrep (str) -> (mlip's parameter name, its array
            [species, channels, 1, features of all orders]).

    Returns:
        ``w{order}_{ir}`` -> [species, num_weights, channels] (float64).

    Raises:
        ValueError: Naming the mlip parameter whose shape differs, or if e3j's
            features are not in the span of ours (a wrong source or keep).
    """
    correlation = contraction.correlation
    positions = {ir: block for (_, ir), block in zip(source, source.slices())}
    columns = []
    for _, ir in contraction.irreps_in:
        if ir not in positions:
            raise ValueError(f"our contraction's input {ir} is not in mlip's {source}")
        columns.append(positions[ir])
    sizes = [
        symmetric_basis_size(contraction.irreps_in, order, str(ir))
        for order in range(1, correlation + 1)
        for _, ir in contraction.irreps_out
    ]
    rng = np.random.default_rng(0)
    samples = rng.standard_normal((2 * max(sizes) + 16, contraction.irreps_in.dim))
    embedded = np.zeros((len(samples), source.dim))
    for block, position in zip(contraction.irreps_in.slices(), columns):
        embedded[:, position] = samples[:, block]
    features = e3j_power_features(embedded, source, keep, correlation)
    ours: dict[str, np.ndarray] = {}
    for ir, (name, array) in weights.items():
        counts = [power[ir].shape[1] if ir in power else 0 for power in features]
        if array.shape[2:] != (1, sum(counts)):
            raise ValueError(
                f"mlip parameter {name!r} has shape {array.shape}; e3j's "
                f"contraction has {sum(counts)} features of {ir} ({counts} per order)"
            )
        offset = 0
        for order, count in enumerate(counts, start=1):
            block = np.moveaxis(array[:, :, 0, offset : offset + count], 1, 2)
            offset += count
            if count == 0:
                continue
            basis = _in_symmetric_basis(contraction, order, ir, features, samples, name)
            if basis is None:
                continue
            effective = np.einsum("jm,smc->sjc", basis, block)
            ours[f"w{order}_{ir}"] = contraction.weights_from_symmetric(
                order, ir, effective
            )
    return ours


def _in_symmetric_basis(
    contraction: SymmetricContraction,
    order: int,
    ir: str,
    features: list[dict[str, np.ndarray]],
    samples: np.ndarray,
    name: str,
) -> np.ndarray | None:
    """B with e3j's features of ``order`` = our symmetric features @ B, [num
    symmetric, num e3j features]; None if ours has none (e3j's must vanish)."""
    theirs = features[order - 1][ir]  # [N, M, d]
    symmetric = contraction.symmetric_features(order, ir, samples)  # [N, J, d]
    scale = max(1.0, float(np.abs(theirs).max()))
    if symmetric.shape[1] == 0:
        if np.abs(theirs).max() > _TOLERANCE * scale:
            raise ValueError(
                f"{name}: e3j's order-{order} features of {ir} are not spanned by ours"
            )
        return None
    lhs = np.moveaxis(symmetric, 1, 2).reshape(-1, symmetric.shape[1])
    rhs = np.moveaxis(theirs, 1, 2).reshape(-1, theirs.shape[1])
    solution, _, rank, _ = np.linalg.lstsq(lhs, rhs, rcond=None)
    if rank < symmetric.shape[1] or np.abs(lhs @ solution - rhs).max() > (
        _TOLERANCE * scale
    ):
        raise ValueError(
            f"{name}: e3j's order-{order} features of {ir} are not spanned by ours"
        )
    return solution
