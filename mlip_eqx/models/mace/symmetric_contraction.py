"""The symmetric contraction of MACE's equivariant product basis.

For every node and channel c it computes

    B_c = sum_{nu=1..correlation} W_nu[species] . U_nu : (A_c ⊗ ... ⊗ A_c)   (nu times)

where A_c are the channel's features (all irreps), U_nu is an equivariant basis of
maps from the nu-th tensor power to each kept output irrep, and W_nu are learnable,
species-dependent weights. The product A_c^⊗nu is symmetric, so it is evaluated on
its distinct monomials only (x_a x_b x_c with a <= b <= c): a basis U_nu is first
reduced to its symmetric part, expressed in the symmetric basis (a constant matrix
that maps the learnable weights to effective ones), and contracted with the monomials
by one dense matrix product per order. The parametrisation (and so the parameter
count) is that of the chosen basis; the function is the same either way.
"""

import itertools
from typing import NamedTuple

import e3nn_jax as e3nn
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int

from mlip_eqx.models.initialisers import normal
from mlip_eqx.utils.precision_cache import cache_per_precision


class _OrderBasis(NamedTuple):
    """Constants of one correlation order (numpy, float64)."""

    monomials: np.ndarray  # [num_monomials, order] feature indices, non-decreasing
    coupling: dict[str, np.ndarray]  # ir -> [num_monomials, num_symmetric, ir.dim]
    to_symmetric: dict[str, np.ndarray]  # ir -> [num_symmetric, num_weights]


@cache_per_precision(maxsize=32)
def _order_basis(
    irreps_in: str, order: int, irreps_out: str, symmetric_basis: bool
) -> _OrderBasis:
    irreps = e3nn.Irreps(irreps_in)
    keep = e3nn.Irreps(irreps_out)
    symmetric_chunks = _symmetric_chunks(irreps_in, order, irreps_out)
    if symmetric_basis:
        general_chunks = symmetric_chunks
    else:
        with jax.ensure_compile_time_eval():
            general = e3nn.reduced_tensor_product_basis([irreps] * order, keep_ir=keep)
        general_chunks = _chunks_by_irrep(general)
    dim = irreps.dim
    tuples = np.array(
        list(itertools.combinations_with_replacement(range(dim), order)), dtype=np.int64
    ).reshape(-1, order)
    coupling, to_symmetric = {}, {}
    for ir, basis in symmetric_chunks.items():
        weights_basis = general_chunks[ir]
        to_symmetric[ir] = _express_in_symmetric_basis(basis, weights_basis, order)
        coupling[ir] = _monomial_coefficients(basis, tuples)
    nonzero = np.zeros(len(tuples), dtype=bool)
    for matrix in coupling.values():
        nonzero |= np.any(matrix != 0.0, axis=(1, 2))
    return _OrderBasis(
        monomials=tuples[nonzero],
        coupling={ir: matrix[nonzero] for ir, matrix in coupling.items()},
        to_symmetric=to_symmetric,
    )


@cache_per_precision(maxsize=32)
def _symmetric_chunks(
    irreps_in: str, order: int, irreps_out: str
) -> dict[str, np.ndarray]:
    """e3nn's symmetric basis of the maps from the order-th tensor power to each
    kept irrep: ir -> [dim] * order + [num_symmetric, ir.dim]."""
    with jax.ensure_compile_time_eval():
        symmetric = e3nn.reduced_symmetric_tensor_product_basis(
            e3nn.Irreps(irreps_in), order, keep_ir=e3nn.Irreps(irreps_out)
        )
    return _chunks_by_irrep(symmetric)


def symmetric_basis_size(irreps_in: e3nn.Irreps, order: int, ir: str) -> int:
    """Dimension of the symmetric basis of the maps from the order-th tensor
    power of ``irreps_in`` (one channel) to the irrep ``ir`` (0: none)."""
    chunks = _symmetric_chunks(str(e3nn.Irreps(irreps_in)), order, ir)
    return chunks[ir].shape[-2] if ir in chunks else 0


def _chunks_by_irrep(basis: e3nn.IrrepsArray) -> dict[str, np.ndarray]:
    chunks = {}
    for (mul, ir), chunk in zip(basis.irreps, basis.chunks):
        if mul > 0 and chunk is not None:
            chunks[str(ir)] = np.asarray(chunk, dtype=np.float64)
    return chunks


def _express_in_symmetric_basis(
    symmetric: np.ndarray, general: np.ndarray, order: int, atol: float = 1e-9
) -> np.ndarray:
    """R with sym(general)[..., k, :] = sum_j symmetric[..., j, :] R[j, k]."""
    axes = list(itertools.permutations(range(order)))
    tail = (order, order + 1)
    symmetrised = sum(np.transpose(general, perm + tail) for perm in axes) / len(axes)
    num_symmetric, num_general = symmetric.shape[-2], general.shape[-2]
    lhs = np.moveaxis(symmetric, -2, -1).reshape(-1, num_symmetric)
    rhs = np.moveaxis(symmetrised, -2, -1).reshape(-1, num_general)
    solution, *_ = np.linalg.lstsq(lhs, rhs, rcond=None)
    if not np.allclose(lhs @ solution, rhs, atol=atol):
        raise RuntimeError("The tensor basis is not spanned by its symmetric part.")
    return solution


def _monomial_coefficients(basis: np.ndarray, tuples: np.ndarray) -> np.ndarray:
    """Sum of basis[perm] over the distinct permutations of each index tuple."""
    order = tuples.shape[1]
    coefficients = np.zeros((len(tuples),) + basis.shape[order:])
    for row, indices in enumerate(tuples):
        for perm in set(itertools.permutations(indices.tolist())):
            coefficients[row] += basis[perm]
    return coefficients


class SymmetricContraction(eqx.Module):
    """Species-dependent symmetric contraction of the features of each channel.

    Attributes:
        weights: ``w{order}_{ir}`` -> [num_species, num_weights, num_channels].
        irreps_in: Irreps of one channel of the input.
        irreps_out: Irreps of one channel of the output (kept irreps with at least
            one path).
        correlation: Highest order.
        symmetric_basis: Whether the weights use the symmetric tensor basis.
    """

    weights: dict[str, Float[Array, "species paths channels"]]
    irreps_in: e3nn.Irreps = eqx.field(static=True)
    irreps_out: e3nn.Irreps = eqx.field(static=True)
    correlation: int = eqx.field(static=True)
    symmetric_basis: bool = eqx.field(static=True)

    def __init__(
        self,
        irreps_in: e3nn.Irreps,
        keep_irreps: e3nn.Irreps,
        *,
        correlation: int,
        num_species: int,
        num_channels: int,
        symmetric_basis: bool,
        dtype: DTypeLike,
        key: jax.Array,
    ):
        """Draws weights with standard deviation (number of weights of the output
        irrep over all orders)**-0.5.

        Args:
            irreps_in: Irreps of one channel (multiplicity 1 each).
            keep_irreps: Output irreps to keep (multiplicities are ignored).
            correlation: Highest order of the contraction.
            num_species: Number of species (one weight set each).
            num_channels: Number of channels (one weight set each).
            symmetric_basis: Parametrise with the symmetric tensor basis.
            dtype: Dtype of the weights.
            key: Random key.
        """
        self.irreps_in = e3nn.Irreps(irreps_in)
        keep = e3nn.Irreps([ir for _, ir in e3nn.Irreps(keep_irreps)]).regroup()
        self.correlation = correlation
        self.symmetric_basis = symmetric_basis
        bases = {order: self._basis(order, keep) for order in range(1, correlation + 1)}
        # One scale per output irrep over all orders, as one linear map of the
        # concatenated orders would have (mlip 0.2's parametrisation).
        totals: dict[str, int] = {}
        for basis in bases.values():
            for ir, to_symmetric in basis.to_symmetric.items():
                totals[ir] = totals.get(ir, 0) + to_symmetric.shape[1]
        weights = {}
        for order, basis in bases.items():
            for ir, to_symmetric in basis.to_symmetric.items():
                key, subkey = jax.random.split(key)
                weights[f"w{order}_{ir}"] = normal(
                    subkey,
                    (num_species, to_symmetric.shape[1], num_channels),
                    dtype,
                    totals[ir] ** -0.5,
                )
        self.weights = weights
        self.irreps_out = e3nn.Irreps(
            [ir for _, ir in keep if str(ir) in totals]
        ).regroup()

    def _basis(self, order: int, keep: e3nn.Irreps) -> _OrderBasis:
        return _order_basis(str(self.irreps_in), order, str(keep), self.symmetric_basis)

    def __call__(
        self,
        features: Float[Array, "n_node channels dim_in"],
        species: Int[Array, " n_node"],
    ) -> e3nn.IrrepsArray:
        """Contracts the features of each node and channel.

        Args:
            features: Node features, one row of ``irreps_in`` per channel.
            species: Species index of each node.

        Returns:
            IrrepsArray of shape [n_node, channels, irreps_out.dim].
        """
        dtype = features.dtype
        terms: dict[str, list[Array]] = {}
        weights: dict[str, list[Array]] = {}
        for order in range(1, self.correlation + 1):
            basis = self._basis(order, self.irreps_out)
            names = list(basis.coupling)
            coupling = np.concatenate(
                [basis.coupling[ir].reshape(len(basis.monomials), -1) for ir in names],
                axis=1,
            )
            monomials = _monomials(features, basis.monomials)
            projected = monomials @ jnp.asarray(coupling, dtype)
            offset = 0
            for ir in names:
                num_symmetric, ir_dim = basis.coupling[ir].shape[1:]
                block = projected[..., offset : offset + num_symmetric * ir_dim]
                offset += num_symmetric * ir_dim
                terms.setdefault(ir, []).append(
                    block.reshape(block.shape[:-1] + (num_symmetric, ir_dim))
                )
                weights.setdefault(ir, []).append(
                    self._effective_weights(basis, order, ir, dtype)
                )
        outputs = []
        for _, ir in self.irreps_out:
            node_terms = jnp.concatenate(terms[str(ir)], axis=-2)
            node_weights = jnp.concatenate(weights[str(ir)], axis=1)[species]
            outputs.append(jnp.einsum("ncpi,npc->nci", node_terms, node_weights))
        return e3nn.IrrepsArray(self.irreps_out, jnp.concatenate(outputs, axis=-1))

    def equivalent_weights(
        self, order: int, ir: str, basis: np.ndarray, weights: np.ndarray
    ) -> np.ndarray:
        """The weights ``w{order}_{ir}`` that give the map of other weights in
        another basis (e.g. mace-torch's ``U`` matrices).

        Args:
            order: The correlation order.
            ir: The output irrep, e.g. "1o".
            basis: Equivariant maps from the order-th tensor power of
                ``irreps_in`` to ``ir``: [dim_in] * order + [num_basis, ir.dim].
            weights: Their weights, [num_species, num_basis, num_channels].

        Returns:
            Our weights, [num_species, num_weights, num_channels], float64: the
            same contraction (on the symmetric tensor power).

        Raises:
            ValueError: If the basis maps outside the span of ours (it is not
                an equivariant basis of the same irreps).
        """
        symmetric = _symmetric_chunks(str(self.irreps_in), order, str(self.irreps_out))
        if ir not in symmetric:
            if np.any(basis != 0.0):
                raise ValueError(
                    f"order {order} has no path to {ir}, but the basis is not zero"
                )
            return np.zeros((weights.shape[0], 0, weights.shape[2]))
        try:
            # The other basis may be float32 (a float32 model's constants).
            in_symmetric = _express_in_symmetric_basis(
                symmetric[ir], basis, order, atol=1e-6 * np.abs(basis).max()
            )
        except RuntimeError:
            raise ValueError(
                f"the order-{order} basis of {ir} is not spanned by ours"
            ) from None
        effective = np.einsum("jk,skc->sjc", in_symmetric, weights)
        return self.weights_from_symmetric(order, ir, effective)

    def weights_from_symmetric(
        self, order: int, ir: str, effective: np.ndarray
    ) -> np.ndarray:
        """The weights ``w{order}_{ir}`` whose effective weights (in the
        symmetric basis) are ``effective``.

        Args:
            order: The correlation order.
            ir: The output irrep, e.g. "1o".
            effective: [num_species, num_symmetric, num_channels].

        Returns:
            Our weights, [num_species, num_weights, num_channels], float64.

        Raises:
            ValueError: If no weights of ours give them.
        """
        to_symmetric = self._basis(order, self.irreps_out).to_symmetric[ir]
        solution = np.einsum("kj,sjc->skc", np.linalg.pinv(to_symmetric), effective)
        if not np.allclose(
            np.einsum("jk,skc->sjc", to_symmetric, solution),
            effective,
            atol=1e-9 * max(np.abs(effective).max(), 1.0),
        ):
            raise ValueError(f"the order-{order} weights of {ir} have no equivalent")
        return solution

    def symmetric_features(
        self, order: int, ir: str, samples: np.ndarray
    ) -> np.ndarray:
        """The features of order ``order`` in the symmetric basis of ``ir`` (those
        the effective weights multiply) of one channel's features, in numpy.

        Args:
            order: The correlation order.
            ir: The output irrep, e.g. "1o".
            samples: One channel's features, [N, irreps_in.dim].

        Returns:
            [N, num_symmetric, ir.dim], float64 (no symmetric path: 0 features).
        """
        basis = self._basis(order, self.irreps_out)
        if ir not in basis.coupling:
            return np.zeros((len(samples), 0, e3nn.Irrep(ir).dim))
        products = np.prod(np.asarray(samples, np.float64)[:, basis.monomials], -1)
        return np.einsum("nt,tjd->njd", products, basis.coupling[ir])

    def _effective_weights(
        self, basis: _OrderBasis, order: int, ir: str, dtype: DTypeLike
    ) -> Float[Array, "species symmetric channels"]:
        """The weights expressed in the symmetric basis."""
        return jnp.einsum(
            "pk,skc->spc",
            jnp.asarray(basis.to_symmetric[ir], dtype),
            self.weights[f"w{order}_{ir}"],
        )


def _monomials(
    features: Float[Array, "n_node channels dim"], indices: np.ndarray
) -> Float[Array, "n_node channels num_monomials"]:
    """Products features[..., i1] * ... * features[..., iv] for each index row."""
    values = _select(features, indices[:, 0])
    for position in range(1, indices.shape[1]):
        values = values * _select(features, indices[:, position])
    return values


def _select(
    features: Float[Array, "... dim"], indices: np.ndarray
) -> Float[Array, "... selected"]:
    """features[..., indices] as a product with a constant 0/1 matrix, whose
    transpose (the backward pass) is a dense matrix product, not a scatter."""
    selection = np.zeros((features.shape[-1], len(indices)))
    selection[indices, np.arange(len(indices))] = 1.0
    return features @ jnp.asarray(selection, features.dtype)
