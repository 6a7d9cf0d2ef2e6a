"""Visnet: parameter counts of mlip, energy composition, readout heads, the C2
cutoff and the vector normalisations."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models import ForceField, Visnet
from mlip_eqx.models.visnet.vector_norm import normalise_vectors
from mlip_eqx.testing import physics
from mlip_eqx.testing.structures import random_system
from tests.helpers.models import DATASET_INFO, counting_dataset_info, num_parameters

SMALL = Visnet.Config(num_layers=2, num_channels=4, num_heads=2, num_rbf=4)


@pytest.mark.parametrize(
    "config, expected",
    [
        # mlip's published visnet_organics_01 and mlip 0.2.5's default, 15
        # elements; counted with mlip 0.2.5's mlip.models.Visnet too
        # (mlip_eqx.models.convert maps its weights into ours one to one).
        (Visnet.Config(num_channels=128), 1_137_922),
        (Visnet.Config(), 4_512_258),
    ],
    ids=["organics-15-elements", "default-15-elements"],
)
def test_parameter_count_equals_mlip(config, expected):
    assert (
        num_parameters(Visnet(config, counting_dataset_info(range(1, 16)))) == expected
    )


def test_trained_radial_basis_and_extra_heads_add_their_parameters():
    info = counting_dataset_info((1, 6))
    base = Visnet(SMALL, info)
    assert base.rbf_centres is None and base.rbf_widths is None
    trained = Visnet(SMALL.replace(trainable_rbf=True), info)
    assert num_parameters(trained) == num_parameters(base) + 2 * SMALL.num_rbf
    two_heads = Visnet(SMALL.replace(num_readout_heads=2), info)
    assert num_parameters(two_heads) == num_parameters(base) + num_parameters(
        base.readouts[0]
    )


def node_energies(network: Visnet, system) -> np.ndarray:
    graph = physics.make_graph(ForceField(network), system)
    call = eqx.filter_jit(lambda net, *args: net(*args))
    return np.asarray(
        call(
            network,
            graph.edge_vectors(),
            graph.species,
            graph.senders,
            graph.receivers,
        )
    )


def test_node_energy_is_scaled_readout_of_head_0_plus_atomic_energy():
    raw_info = DatasetInfo(
        atomic_energies_map=DATASET_INFO.atomic_energies_map,
        cutoff_distance_angstrom=DATASET_INFO.cutoff_distance_angstrom,
        avg_num_neighbors=DATASET_INFO.avg_num_neighbors,
    )
    key = jax.random.key(3)
    config = SMALL.replace(num_readout_heads=2)
    raw = Visnet(config.replace(atomic_energies="zero"), raw_info, key=key)
    full = Visnet(config, DATASET_INFO, key=key)
    system = random_system(np.random.default_rng(1), 6)
    species = physics.make_graph(ForceField(full), system).species
    readout = node_energies(raw, system)
    e0 = np.array(list(DATASET_INFO.atomic_energies_map.values()))[species]
    expected = DATASET_INFO.scaling_mean + DATASET_INFO.scaling_stdev * readout + e0
    np.testing.assert_allclose(node_energies(full, system), expected, rtol=1e-5)
    assert np.abs(readout).max() > 1e-3
    other_head = eqx.tree_at(
        lambda n: n.readouts[1],
        raw,
        jax.tree.map(jnp.zeros_like, raw.readouts[1]),
    )
    np.testing.assert_array_equal(node_energies(other_head, system), readout)


def test_dimer_energy_is_twice_differentiable_at_the_cutoff():
    """The polynomial envelope on every message makes the energy C2: its second
    derivative in the distance vanishes as the cutoff is approached (mlip's legacy
    cosine cutoff left it finite)."""
    with jax.enable_x64(True):
        network = Visnet(SMALL, DATASET_INFO, key=jax.random.key(1))
        cutoff = DATASET_INFO.cutoff_distance_angstrom
        species = jnp.array([0, 2])
        senders, receivers = jnp.array([0, 1]), jnp.array([1, 0])

        def energy(distance):
            vector = distance * jnp.array([0.6, 0.0, 0.8])
            return jnp.sum(
                network(jnp.stack([vector, -vector]), species, senders, receivers)
            )

        curvature = jax.jit(jax.grad(jax.grad(energy)))
        far = abs(float(curvature(cutoff - 0.5)))
        near = [abs(float(curvature(cutoff - gap))) for gap in (1e-2, 1e-3)]
        assert far > 1e-6
        assert near[0] < 0.1 * far and near[1] < 0.2 * near[0]


@pytest.mark.parametrize("norm_type", ["rms", "max_min"])
def test_vector_norms_are_equivariant_and_smooth_at_zero(norm_type):
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        vectors = jnp.asarray(rng.normal(size=(3, 8, 5)))
        rotation = jnp.asarray(np.linalg.qr(rng.normal(size=(3, 3)))[0])
        rotated = vectors.at[:, :3].set(
            jnp.einsum("ij,njc->nic", rotation, vectors[:, :3])
        )
        np.testing.assert_allclose(
            normalise_vectors(rotated, norm_type)[:, :3],
            jnp.einsum(
                "ij,njc->nic", rotation, normalise_vectors(vectors, norm_type)[:, :3]
            ),
            atol=1e-12,
        )
        np.testing.assert_allclose(
            normalise_vectors(rotated, norm_type)[:, 3:],
            normalise_vectors(vectors, norm_type)[:, 3:],
            atol=1e-12,
        )
        if norm_type == "max_min":
            norms = jnp.linalg.norm(
                normalise_vectors(vectors, norm_type)[:, :3], axis=1
            )
            np.testing.assert_allclose(norms.min(axis=-1), 0.0, atol=1e-9)
            np.testing.assert_allclose(norms.max(axis=-1), 1.0, atol=1e-9)

        def total(vectors):
            return jnp.sum(normalise_vectors(vectors, norm_type) ** 2)

        hessian = jax.jit(jax.hessian(total))(jnp.zeros((1, 8, 2)))
        assert bool(jnp.all(jnp.isfinite(hessian)))


def test_every_parameter_gets_weight_decay_and_a_missing_energy_raises():
    network = Visnet(SMALL, DATASET_INFO)
    assert all(jax.tree.leaves(network.weight_decay_mask()))
    with pytest.raises(ValueError, match="no energy given for Au"):
        Visnet(SMALL.replace(atomic_energies={29: 1.0, 47: 1.0}), DATASET_INFO)
