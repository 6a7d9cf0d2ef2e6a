"""Radial basis, envelopes and safe norms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlip_eqx.models.blocks.radial import (
    bessel_basis,
    polynomial_envelope,
    radial_embedding,
    safe_norm,
    soft_envelope,
)

CUTOFF = 5.0


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def test_polynomial_envelope_is_one_at_zero_and_vanishes_smoothly_at_cutoff():
    def envelope(r):
        return polynomial_envelope(jnp.atleast_1d(r), CUTOFF)[0]

    assert envelope(0.0) == 1.0
    for derivative_order in range(3):
        function = envelope
        for _ in range(derivative_order):
            function = jax.grad(function)
        assert abs(function(CUTOFF)) < 1e-10, derivative_order
    beyond = polynomial_envelope(jnp.array([CUTOFF, CUTOFF + 0.1, 10.0]), CUTOFF)
    np.testing.assert_array_equal(beyond, 0.0)
    inside = polynomial_envelope(jnp.linspace(0.1, CUTOFF - 0.1, 50), CUTOFF)
    assert bool(jnp.all((inside > 0) & (inside < 1)))


def test_soft_envelope_vanishes_beyond_cutoff():
    values = soft_envelope(jnp.array([0.0, CUTOFF, CUTOFF + 1.0]), CUTOFF)
    np.testing.assert_allclose(values, [1.2, 0.0, 0.0], atol=1e-12)


def test_bessel_basis_is_orthonormal_with_weight_r_squared():
    radii = jnp.linspace(1e-6, CUTOFF, 200_001)
    basis = bessel_basis(radii, CUTOFF, 6)
    gram = jnp.trapezoid(
        radii[:, None, None] ** 2 * basis[:, :, None] * basis[:, None, :],
        radii,
        axis=0,
    )
    np.testing.assert_allclose(gram, np.eye(6), atol=1e-6)


def test_zero_length_edges_give_zero_features_and_zero_gradients():
    vectors = jnp.array([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]])

    def features(vectors):
        lengths, is_zero = safe_norm(vectors)
        return radial_embedding(
            lengths,
            is_zero,
            cutoff=CUTOFF,
            num_basis=8,
            envelope="polynomial_envelope",
            r_min=1.5,
        )

    values = features(vectors)
    np.testing.assert_array_equal(values[0], 0.0)
    assert bool(jnp.all(values[1] != 0.0))
    jacobian = jax.jit(jax.jacfwd(features))(vectors)
    np.testing.assert_array_equal(jacobian[:, :, 0], 0.0)
    assert bool(jnp.all(jnp.isfinite(jacobian)))
    gradient = jax.grad(lambda v: safe_norm(v)[0].sum())(vectors)
    np.testing.assert_allclose(gradient, [[0, 0, 0], [1 / 3, 2 / 3, 2 / 3]])
    second = jax.jit(jax.hessian(lambda v: features(v).sum()))(vectors)
    assert bool(jnp.all(jnp.isfinite(second)))


@pytest.mark.parametrize("envelope", ["polynomial_envelope", "soft_envelope"])
def test_r_min_normalises_the_mean_square_embedding(envelope):
    lengths = jnp.linspace(1.5, CUTOFF, 1000)
    values = radial_embedding(
        lengths,
        jnp.zeros(1000, bool),
        cutoff=CUTOFF,
        num_basis=8,
        envelope=envelope,
        r_min=1.5,
    )
    np.testing.assert_allclose(jnp.mean(values**2), 1.0, rtol=1e-4)
