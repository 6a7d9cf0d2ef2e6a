"""A network outside the library opts into the shared suite by subclassing
NetworkTests, and the suite catches a network that breaks a symmetry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlip_eqx.models import ForceField
from mlip_eqx.models.registry import register_network
from mlip_eqx.testing import NetworkTests, physics
from mlip_eqx.testing.network_tests import triclinic_crystal
from tests.helpers.models import DATASET_INFO
from tests.helpers.pair_network import PairNetwork


@register_network
class UserPairNetwork(PairNetwork):
    """A user's network: the pair network, registered under its own name."""


class TestUserNetwork(NetworkTests):
    # The pair network's envelope (1 - (r/r_c)^2)^2 is only C1 at the cutoff.
    cutoff_force_tolerance = 1e-4

    @pytest.fixture
    def make_force_field(self):
        return lambda: ForceField.from_mlip_network(
            UserPairNetwork(UserPairNetwork.Config(), DATASET_INFO),
            predict_stress=True,
        )


class DirectionalPairNetwork(PairNetwork):
    """Not rotation invariant: pair energies depend on the x component."""

    def __call__(
        self, edge_vectors, node_species, senders, receivers, paired_edges=False
    ):
        tilted = edge_vectors * jnp.asarray([1.3, 1.0, 1.0], edge_vectors.dtype)
        return super().__call__(tilted, node_species, senders, receivers, paired_edges)


def test_the_invariance_check_catches_a_directional_network():
    with jax.enable_x64(True):
        network = DirectionalPairNetwork(PairNetwork.Config(), DATASET_INFO)
        force_field = ForceField.from_mlip_network(network, predict_stress=True)
        rng = np.random.default_rng(0)
        system = triclinic_crystal(rng, 5, force_field.allowed_atomic_numbers)
        with pytest.raises(AssertionError):
            physics.check_invariance(
                force_field, system, rng, reflect=False, rtol=1e-9, atol=1e-10
            )
