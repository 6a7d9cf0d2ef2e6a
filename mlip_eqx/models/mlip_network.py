"""MLIPNetwork: the interface of every energy model (MACE, NequIP, ViSNet)."""

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.utils.config import Config


class MLIPNetwork(eqx.Module):
    """Abstract GNN that maps a graph's edges and species to per-node energies.

    A concrete network provides a ``Config`` class attribute (a subclass of
    :class:`~mlip_eqx.utils.config.Config`), holds ``config`` and ``dataset_info`` as
    static fields and its trainable parameters as arrays, and is built as
    ``Network(config, dataset_info, key=key)``; without a key its parameters are
    drawn from ``jax.random.key(0)``. Its parameters have the dtype of
    :func:`default_float_dtype` at construction.

    A network that sets ``supports_paired_edges = True`` is called with
    ``paired_edges=True`` for graphs in the paired edge layout of ``Graph`` (the
    second half of the edges reverses the first), so that it can evaluate per-pair
    functions once; other networks are called without that argument.
    """

    Config: ClassVar[type[Config]]
    supports_paired_edges: ClassVar[bool] = False
    config: eqx.AbstractVar[Config]
    dataset_info: eqx.AbstractVar[DatasetInfo]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        call = cls.__dict__.get("__call__")
        is_concrete = call is not None and not getattr(
            call, "__isabstractmethod__", False
        )
        config_class = getattr(cls, "Config", None)
        if is_concrete and not (
            isinstance(config_class, type) and issubclass(config_class, Config)
        ):
            raise TypeError(
                f"{cls.__name__} must set the class attribute `Config` to its config "
                "class (a subclass of mlip_eqx.utils.config.Config)."
            )

    @abc.abstractmethod
    def __call__(
        self,
        edge_vectors: Float[Array, "n_edge 3"],
        node_species: Int[Array, " n_node"],
        senders: Int[Array, " n_edge"],
        receivers: Int[Array, " n_edge"],
    ) -> Float[Array, " n_node"]:
        """Energy of each node in eV.

        Args:
            edge_vectors: Vectors from sender to receiver in Å; padding edges are
                exactly zero and must not influence any result.
            node_species: Index of each node's element in the dataset's element table.
            senders: Sending node of each edge.
            receivers: Receiving node of each edge.

        Returns:
            The energy contribution of every node (including the E0 reference) in eV.
        """


def default_float_dtype() -> jnp.dtype:
    """float64 when ``jax_enable_x64`` is on, float32 otherwise."""
    return jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))
