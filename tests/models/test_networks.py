"""Our networks in the shared network test suite (mlip_eqx.testing.NetworkTests).

A network of ours opts in by adding a configuration to ``NETWORK_CONFIGS`` in
``tests/helpers/models.py``; a user's network subclasses ``NetworkTests``.
"""

import pytest

from mlip_eqx.testing import NetworkTests
from tests.helpers.models import NETWORK_CONFIGS, force_field

BASE_CONFIGS = ("mace", "nequip", "visnet")
VARIANT_CONFIGS = tuple(sorted(set(NETWORK_CONFIGS) - set(BASE_CONFIGS)))


class TestOurNetworks(NetworkTests):
    """The base configuration of each network: every check."""

    @pytest.fixture(params=BASE_CONFIGS)
    def make_force_field(self, request):
        return lambda: force_field(request.param)


class TestOurNetworkVariants(NetworkTests):
    """The other configurations (envelopes, pseudotensors, layer counts, heads,
    normalisations): every check of what a configuration changes (symmetries,
    derivatives, the cutoff, finite gradients with padding, paired edges, the
    archive). Whether a batch predicts each structure as alone, whatever its
    padding, is the force field's batching, the same for every configuration
    of a network: checked on the base configurations (half a minute of
    compilations saved)."""

    test_batch_gives_the_same_results_as_each_structure_alone = None
    test_extra_padding_changes_nothing = None
    test_energies_are_those_of_the_prediction = None

    @pytest.fixture(params=VARIANT_CONFIGS)
    def make_force_field(self, request):
        return lambda: force_field(request.param)
