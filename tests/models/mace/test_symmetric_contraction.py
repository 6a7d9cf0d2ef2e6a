"""SymmetricContraction against a direct evaluation of the tensor contraction."""

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlip_eqx.models.mace.symmetric_contraction import SymmetricContraction

IRREPS_IN = e3nn.Irreps("0e + 1o + 2e")
KEEP = e3nn.Irreps("0e + 1o + 2e")
NUM_SPECIES, NUM_CHANNELS, NUM_NODES, CORRELATION = 2, 3, 5, 3


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def contraction(symmetric_basis: bool) -> SymmetricContraction:
    return SymmetricContraction(
        IRREPS_IN,
        KEEP,
        correlation=CORRELATION,
        num_species=NUM_SPECIES,
        num_channels=NUM_CHANNELS,
        symmetric_basis=symmetric_basis,
        dtype=jnp.float64,
        key=jax.random.key(0),
    )


def direct(module: SymmetricContraction, features, species) -> np.ndarray:
    """sum_nu W_nu[species] . U_nu : features^(⊗nu), with the full basis tensors."""
    outputs = []
    for _, ir in module.irreps_out:
        total = 0.0
        for order in range(1, CORRELATION + 1):
            if module.symmetric_basis:
                basis = e3nn.reduced_symmetric_tensor_product_basis(
                    IRREPS_IN, order, keep_ir=[ir]
                )
            else:
                basis = e3nn.reduced_tensor_product_basis(
                    [IRREPS_IN] * order, keep_ir=[ir]
                )
            if basis.irreps.dim == 0:
                continue
            tensor = np.asarray(basis.chunks[0])  # [dim] * order + [paths, ir.dim]
            weights = np.asarray(module.weights[f"w{order}_{ir}"])[species]
            power = features
            for _ in range(order - 1):
                power = np.einsum("nc...,ncj->nc...j", power, features)
            letters = "jklm"[:order]
            total = total + np.einsum(
                f"nc{letters},{letters}pi,npc->nci", power, tensor, weights
            )
        outputs.append(total)
    return np.concatenate(outputs, axis=-1)


@pytest.mark.parametrize("symmetric_basis", [False, True])
def test_equals_the_direct_contraction(symmetric_basis, x64):
    module = contraction(symmetric_basis)
    assert module.irreps_out == KEEP
    rng = np.random.default_rng(0)
    features = rng.normal(size=(NUM_NODES, NUM_CHANNELS, IRREPS_IN.dim))
    species = rng.integers(0, NUM_SPECIES, NUM_NODES)
    result = module(jnp.asarray(features), jnp.asarray(species))
    assert result.irreps == KEEP
    assert result.shape == (NUM_NODES, NUM_CHANNELS, KEEP.dim)
    np.testing.assert_allclose(
        np.asarray(result.array),
        direct(module, features, species),
        rtol=1e-10,
        atol=1e-12,
    )


def test_output_rotates_with_the_input(x64):
    module = contraction(symmetric_basis=False)
    rng = np.random.default_rng(1)
    features = rng.normal(size=(NUM_NODES, NUM_CHANNELS, IRREPS_IN.dim))
    species = jnp.asarray(rng.integers(0, NUM_SPECIES, NUM_NODES))
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation = -(q * np.sign(np.diag(r))) * np.sign(np.linalg.det(q))  # det -1
    d_in = np.asarray(IRREPS_IN.D_from_matrix(jnp.asarray(rotation)))
    d_out = np.asarray(KEEP.D_from_matrix(jnp.asarray(rotation)))
    rotated = module(jnp.asarray(features @ d_in.T), species).array
    expected = np.asarray(module(jnp.asarray(features), species).array) @ d_out.T
    np.testing.assert_allclose(np.asarray(rotated), expected, rtol=1e-9, atol=1e-10)
