"""Our networks in the shared network test suite (mlip_eqx.testing.NetworkTests).

A network of ours opts in by adding a configuration to ``NETWORK_CONFIGS`` in
``tests/helpers/models.py``; a user's network subclasses ``NetworkTests``.
"""

import pytest

from mlip_eqx.testing import NetworkTests
from tests.helpers.models import NETWORK_CONFIGS, force_field


class TestOurNetworks(NetworkTests):
    @pytest.fixture(params=sorted(NETWORK_CONFIGS))
    def make_force_field(self, request):
        return lambda: force_field(request.param)
