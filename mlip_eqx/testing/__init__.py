"""Checks for tests of force fields: physics (invariances, finite differences,
continuity at the cutoff), padding and batching, and the shared network test
suite :class:`NetworkTests` that any network opts into. Needs pytest (the
``test`` extra) for :class:`NetworkTests`."""

from mlip_eqx.testing.network_tests import NetworkTests

__all__ = ["NetworkTests"]
