"""The component-major messages equal e3nn's tensor products."""

import functools

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlip_eqx.models.blocks.harmonics import edge_harmonics
from mlip_eqx.models.blocks.message_passing import (
    message_coupling,
    message_couplings,
    reference_messages,
    summed_grouped_messages,
    summed_messages,
)

CASES = [
    ("8x0e", 2, "8x0e+8x1o+8x2e"),
    ("8x0e+8x1o+8x2e", 2, "8x0e+8x1o+8x2e"),
    ("4x0e+4x1o", 3, "4x0e+4x1o+4x1e+4x2e+4x3o"),
    ("4x0e+4x1o+4x2e+4x3o", 3, "4x0e+4x0o+4x1o+4x1e+4x2e+4x2o+4x3o+4x3e"),
    ("3x0e+3x1o", 0, "3x0e+3x1o"),
]


@pytest.mark.parametrize(("source", "l_max", "target"), CASES)
def test_summed_messages_equal_e3nn_tensor_product(source, l_max, target):
    num_nodes, num_edges = 7, 40
    keys = jax.random.split(jax.random.key(1), 5)
    coupling = message_coupling(e3nn.Irreps(source), l_max, e3nn.Irreps(target))
    features = e3nn.normal(source, keys[0], (num_nodes,))
    vectors = jax.random.normal(keys[1], (num_edges, 3))
    senders = jax.random.randint(keys[2], (num_edges,), 0, num_nodes)
    receivers = jax.random.randint(keys[3], (num_edges,), 0, num_nodes)
    weights = jax.random.normal(keys[4], (num_edges, coupling.irreps.num_irreps))
    harmonics = edge_harmonics(vectors, l_max)

    # Jitted: one compilation each instead of e3nn's many eager operations.
    @jax.jit
    def ours_and_expected(features, harmonics, weights):
        ours = summed_messages(
            coupling, features, harmonics, weights, senders, receivers
        )
        expected = reference_messages(
            features[senders],
            e3nn.IrrepsArray(e3nn.Irreps.spherical_harmonics(l_max), harmonics),
            e3nn.Irreps(target),
        )
        expected_sum = jax.ops.segment_sum(
            (expected * weights).array, receivers, num_segments=num_nodes
        )
        return ours, expected.irreps, expected_sum

    ours, expected_irreps, expected_sum = ours_and_expected(
        features, harmonics, weights
    )
    assert ours.irreps == expected_irreps == coupling.irreps
    np.testing.assert_allclose(ours.array, expected_sum, atol=2e-5, rtol=1e-5)


def test_gradients_equal_e3nn_tensor_product():
    """First and second derivatives (forces in the loss) agree too."""
    source, l_max, target = CASES[1]
    coupling = message_coupling(e3nn.Irreps(source), l_max, e3nn.Irreps(target))
    keys = jax.random.split(jax.random.key(2), 5)
    features = e3nn.normal(source, keys[0], (5,))
    vectors = jax.random.normal(keys[1], (20, 3))
    senders = jax.random.randint(keys[2], (20,), 0, 5)
    receivers = jax.random.randint(keys[3], (20,), 0, 5)
    weights = jax.random.normal(keys[4], (20, coupling.irreps.num_irreps))

    def ours(x, v, w):
        harmonics = edge_harmonics(v, l_max)
        out = summed_messages(
            coupling, e3nn.IrrepsArray(source, x), harmonics, w, senders, receivers
        )
        return jnp.sum(jnp.sin(out.array))

    def reference(x, v, w):
        harmonics = e3nn.IrrepsArray(
            e3nn.Irreps.spherical_harmonics(l_max), edge_harmonics(v, l_max)
        )
        messages = reference_messages(
            e3nn.IrrepsArray(source, x)[senders], harmonics, e3nn.Irreps(target)
        )
        out = jax.ops.segment_sum((messages * w).array, receivers, num_segments=5)
        return jnp.sum(jnp.sin(out))

    def force_loss(function):
        def loss(x, w):
            forces = jax.grad(function, argnums=1)(x, vectors, w)
            return jnp.sum(forces**2)

        return jax.jit(jax.grad(loss, argnums=(0, 1)))

    for got, want in zip(
        force_loss(ours)(features.array, weights),
        force_loss(reference)(features.array, weights),
    ):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_sender_irreps_with_different_multiplicities_are_rejected():
    with pytest.raises(ValueError, match="one multiplicity"):
        message_coupling(e3nn.Irreps("4x0e+2x1o"), 2, e3nn.Irreps("4x0e"))


@pytest.mark.parametrize(
    ("source", "l_max", "target"),
    [
        ("6x0e+4x0o+4x1e+2x1o+2x2e", 2, "6x0e+4x0o+7x0e+4x1e+2x1o+2x2e"),
        ("3x1o+5x0e", 3, "2x0e+1x1o+1x1e+1x2e+2x3o"),
    ],
)
def test_grouped_messages_of_mixed_multiplicities_equal_e3nn(source, l_max, target):
    """Per path (sender irrep, harmonic degree, output irrep) and channel, the
    messages are e3nn's tensor products weighted by the radial weights."""
    num_nodes, num_edges = 6, 30
    keys = jax.random.split(jax.random.key(3), 5)
    target = e3nn.Irreps(target)
    couplings = message_couplings(e3nn.Irreps(source), l_max, target)
    assert len(couplings) == len({mul for mul, _ in e3nn.Irreps(source)})
    features = e3nn.normal(source, keys[0], (num_nodes,))
    vectors = jax.random.normal(keys[1], (num_edges, 3))
    senders = jax.random.randint(keys[2], (num_edges,), 0, num_nodes)
    receivers = jax.random.randint(keys[3], (num_edges,), 0, num_nodes)
    num_weights = sum(c.num_paths * c.num_channels for c in couplings)
    weights = jax.random.normal(keys[4], (num_edges, num_weights))
    harmonics = edge_harmonics(vectors, l_max)

    ours = jax.jit(summed_grouped_messages, static_argnums=0)(
        tuple(couplings), features, harmonics, weights, senders, receivers
    )
    expected, offset = expected_grouped_messages(
        couplings, features, harmonics, weights, senders, receivers, l_max
    )
    assert offset == num_weights
    got = ours.regroup()
    for ir in {ir for ir, _ in expected}:
        want = jnp.concatenate([x for t, x in expected if t == ir], axis=1)
        chunk = got.filter(keep=[ir]).chunks[0]
        np.testing.assert_allclose(chunk, want, atol=2e-5, rtol=1e-5)


@functools.partial(jax.jit, static_argnums=(0, 6))
def expected_grouped_messages(
    couplings, features, harmonics, weights, senders, receivers, l_max
):
    """e3nn's tensor product per path, weighted by the radial weights and summed
    over each receiver's edges (jitted: one compilation for e3nn's operations)."""
    num_nodes = features.shape[0]
    sh = e3nn.IrrepsArray(e3nn.Irreps.spherical_harmonics(l_max), harmonics)
    expected, offset = [], 0
    for coupling in couplings:
        for target_ir, (source_ir, degree) in zip(
            coupling.path_irreps, coupling.path_sources
        ):
            sender = features.filter(keep=[source_ir])[senders]
            product = e3nn.tensor_product(
                sender,
                sh.filter(keep=[e3nn.Irrep(degree, (-1) ** degree)]),
                filter_ir_out=[target_ir],
                irrep_normalization="component",
            )
            channels = coupling.num_channels
            weighted = (
                product.mul_to_axis(channels).array
                * (weights[:, offset : offset + channels, None])
            )
            offset += channels
            expected.append(
                (target_ir, jax.ops.segment_sum(weighted, receivers, num_nodes))
            )
    return expected, offset
