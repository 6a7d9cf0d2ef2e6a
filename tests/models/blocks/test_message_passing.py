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


def _chunk_case(num_edges: int = 300):
    """A coupling with two source groups, node features and edges (float64)."""
    keys = jax.random.split(jax.random.key(3), 5)
    coupling = message_coupling(e3nn.Irreps("4x0e+4x1o"), 3, e3nn.Irreps("0e+1o+2e+3o"))
    features = e3nn.normal(coupling.source_irreps, keys[0], (11,), dtype=jnp.float64)
    vectors = jax.random.normal(keys[1], (num_edges, 3), jnp.float64)
    weights = jax.random.normal(
        keys[2], (num_edges, coupling.irreps.num_irreps), jnp.float64
    )
    senders = jax.random.randint(keys[3], (num_edges,), 0, 11)
    receivers = jax.random.randint(keys[4], (num_edges,), 0, 11)
    return coupling, features, vectors, weights, senders, receivers


def _chunked_energy(coupling, senders, receivers, chunk):
    """A non-linear scalar of the messages, as a function of features, edge
    vectors and radial weights."""

    def energy(features, vectors, weights):
        features = e3nn.IrrepsArray(coupling.source_irreps, features)
        harmonics = edge_harmonics(vectors, 3)
        summed = summed_messages(
            coupling, features, harmonics, weights, senders, receivers, chunk
        )
        return jnp.sum(jnp.sin(summed.array))

    return energy


@pytest.mark.parametrize("chunk", [64, 77])
def test_messages_in_edge_chunks_equal_the_whole_sum_with_derivatives(chunk):
    """Chunks (one that divides nothing, so the edges are padded) give the same
    sum, gradients and the second derivative that training with forces takes."""
    with jax.enable_x64(True):
        coupling, features, vectors, weights, senders, receivers = _chunk_case()
        features = features.array
        results = {}
        for size in (None, chunk):
            energy = _chunked_energy(coupling, senders, receivers, size)

            def force_loss(weights, energy=energy):
                forces = jax.grad(energy, argnums=1)(features, vectors, weights)
                return jnp.sum(forces**2)

            value, gradients = jax.jit(jax.value_and_grad(energy, argnums=(0, 1, 2)))(
                features, vectors, weights
            )
            second = jax.jit(jax.grad(force_loss))(weights)
            results[size] = (value, *jax.tree.leaves(gradients), second)
        for whole, chunked in zip(results[None], results[chunk]):
            np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-12)


def test_chunked_messages_run_inside_shard_map():
    """The scan's running sums keep the mesh axes of the inputs (the training
    step runs under shard_map)."""
    coupling, features, vectors, weights, senders, receivers = _chunk_case(128)
    mesh = jax.make_mesh((1,), ("data",))
    spec = jax.sharding.PartitionSpec("data")

    def summed(features_array, vectors, weights):
        features = e3nn.IrrepsArray(coupling.source_irreps, features_array)
        harmonics = edge_harmonics(vectors[0], 3)
        chunked = summed_messages(
            coupling, features[0], harmonics, weights[0], senders, receivers, 50
        )
        return chunked.array[None]

    inputs = jax.device_put(
        (features.array[None], vectors[None], weights[None]),
        jax.sharding.NamedSharding(mesh, spec),
    )
    sharded = jax.jit(jax.shard_map(summed, mesh=mesh, in_specs=spec, out_specs=spec))(
        *inputs
    )
    whole = summed_messages(
        coupling,
        features,
        edge_harmonics(vectors, 3),
        weights,
        senders,
        receivers,
    )
    np.testing.assert_allclose(sharded[0], whole.array, rtol=1e-5, atol=1e-5)


def test_chunk_size_bounds_the_messages_bytes(monkeypatch):
    from mlip_eqx.models.blocks import message_passing

    coupling = message_coupling(
        e3nn.Irreps("128x0e+128x1o"), 3, e3nn.Irreps("0e+1o+2e+3o")
    )
    # 40 components x 128 channels x 4 bytes = 20,480 bytes per edge
    monkeypatch.setattr(message_passing, "MESSAGE_CHUNK_BYTES", 100 * 20_480 * 1024)
    chunk_size = message_passing.message_chunk_size
    assert chunk_size(coupling, 102_400, np.float32) == 102_400  # fits: whole
    assert chunk_size(coupling, 102_401, np.float32) == 102_400
    assert chunk_size(coupling, 300_000, np.float64) == 50 * 1024
    monkeypatch.setattr(message_passing, "MESSAGE_CHUNK_BYTES", 1)
    assert chunk_size(coupling, 300_000, np.float32) == 1024  # the floor
