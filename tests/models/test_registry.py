"""The network registry: lookup by name, clear errors."""

import pytest

from mlip_eqx.models import Mace, registry
from mlip_eqx.models.registry import (
    UnknownNetworkError,
    get_network_class,
    register_network,
    registered_network_names,
)
from tests.helpers.pair_network import PairNetwork


def test_built_in_networks_are_registered_by_class_name():
    assert get_network_class("Mace") is Mace
    assert "Mace" in registered_network_names()
    assert register_network(Mace) is Mace  # registering again is harmless


def test_unknown_name_lists_the_known_networks():
    with pytest.raises(UnknownNetworkError, match=r"'Nequipp'.*known networks.*Mace"):
        get_network_class("Nequipp")
    assert issubclass(UnknownNetworkError, ValueError)


def test_register_a_network(monkeypatch):
    monkeypatch.setattr(registry, "_NETWORKS", dict(registry._NETWORKS))
    assert register_network(PairNetwork) is PairNetwork
    assert get_network_class("PairNetwork") is PairNetwork


def test_only_distinct_networks_can_be_registered(monkeypatch):
    monkeypatch.setattr(registry, "_NETWORKS", dict(registry._NETWORKS))
    with pytest.raises(TypeError):
        register_network(dict)
    other = type("Mace", (PairNetwork,), {"__module__": "elsewhere"})
    with pytest.raises(ValueError, match=r"elsewhere\.Mace.*mlip_eqx\.models\.mace"):
        register_network(other)
    assert get_network_class("Mace") is Mace
