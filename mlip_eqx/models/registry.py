"""The registry of networks that model archives and the CLI find by name."""

from typing import TypeVar

from mlip_eqx.models.mlip_network import MLIPNetwork

NetworkClass = TypeVar("NetworkClass", bound=type[MLIPNetwork])

_NETWORKS: dict[str, type[MLIPNetwork]] = {}


class UnknownNetworkError(ValueError):
    """No network is registered under a name."""


def register_network(network_class: NetworkClass) -> NetworkClass:
    """Class decorator: registers a network under its class name.

    Args:
        network_class: A concrete subclass of :class:`MLIPNetwork`.

    Returns:
        ``network_class`` itself.

    Raises:
        TypeError: If it is not an MLIPNetwork subclass.
        ValueError: If another class of that name is registered.
    """
    if not (isinstance(network_class, type) and issubclass(network_class, MLIPNetwork)):
        raise TypeError(f"{network_class!r} is not a subclass of MLIPNetwork.")
    name = network_class.__name__
    known = _NETWORKS.get(name)
    if known is not None and _qualified_name(known) != _qualified_name(network_class):
        raise ValueError(
            f"Cannot register {_qualified_name(network_class)} as {name!r}: "
            f"{_qualified_name(known)} is registered under that name."
        )
    _NETWORKS[name] = network_class
    return network_class


def get_network_class(name: str) -> type[MLIPNetwork]:
    """The network class registered as ``name`` (its class name, e.g. "Mace").

    Raises:
        UnknownNetworkError: (a ValueError) If no network has that name; the
            message lists the known ones.
    """
    try:
        return _NETWORKS[name]
    except KeyError:
        raise UnknownNetworkError(
            f"No network is registered as {name!r}; known networks: "
            f"{registered_network_names()}."
        ) from None


def registered_network_names() -> list[str]:
    """The names of the registered networks, sorted."""
    return sorted(_NETWORKS)


def _qualified_name(network_class: type) -> str:
    return f"{network_class.__module__}.{network_class.__qualname__}"
