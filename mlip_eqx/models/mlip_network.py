"""MLIPNetwork: the interface of every energy model (MACE, NequIP, ViSNet)."""

import abc
import logging
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PyTree

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.utils.config import Config

FloatDtypeName = Literal["float32", "float64"]

logger = logging.getLogger("mlip_eqx")


class MLIPNetwork(eqx.Module):
    """Abstract GNN that maps a graph's edges and species to per-node energies.

    A concrete network declares its config class as the class attribute ``Config``
    (a subclass of :class:`~mlip_eqx.utils.config.Config`), holds ``config`` and
    ``dataset_info`` as static fields and its trainable parameters as inexact
    arrays, and is built as ``Network(config, dataset_info, key=key)``; without a
    key its parameters are drawn from ``jax.random.key(0)``. Its parameters have
    the dtype of :func:`default_float_dtype` at construction. Register it with
    :func:`~mlip_eqx.models.registry.register_network` so that model archives and
    the CLI find it by name.

    Which parameters get weight decay is declared by the class variable
    ``weight_decay_where`` (see :meth:`weight_decay_mask`): a network written
    for the original library needs nothing more than it had there.
    """

    Config: eqx.AbstractClassVar[type[Config]]
    config: eqx.AbstractVar[Config]
    dataset_info: eqx.AbstractVar[DatasetInfo]
    weight_decay_where: ClassVar[Callable[[Any], Sequence[PyTree]] | None] = None
    """The parts of the network that get weight decay, as ``where`` of
    ``eqx.tree_at``: a function of the network that returns a sequence of its
    sub-trees (e.g. modules). None (the default): every parameter gets decay, as
    the original library does for every network but MACE."""
    has_readout_heads: ClassVar[bool] = False
    """Whether the network's ``Config`` has ``num_readout_heads`` (one readout head
    per data set, selected per structure), so that fine-tuning can add a head
    (:func:`mlip_eqx.models.params_transfer.with_new_readout_head`)."""
    takes_paired_edges: ClassVar[bool] = False
    """Whether ``__call__`` takes ``paired_edges`` (force fields then pass the
    graph's layout). False (the default): it is called as the original
    library's networks are, ``(edge_vectors, node_species, senders,
    receivers)`` (and ``node_dataset_idx`` for models of several data sets)."""

    @abc.abstractmethod
    def __call__(
        self,
        edge_vectors: Float[Array, "n_edge 3"],
        node_species: Int[Array, " n_node"],
        senders: Int[Array, " n_edge"],
        receivers: Int[Array, " n_edge"],
        paired_edges: bool = False,
        node_dataset_idx: Int[Array, " n_node"] | None = None,
    ) -> Float[Array, " n_node"]:
        """Energy of each node in eV.

        Args:
            edge_vectors: Vectors from sender to receiver in Å; padding edges are
                exactly zero and must not influence any result.
            node_species: Index of each node's element in the dataset's element table.
            senders: Sending node of each edge.
            receivers: Receiving node of each edge.
            paired_edges: Whether the edges have the paired layout of ``Graph``
                (edge ``k + n_edge / 2`` reverses edge ``k``), so that a network
                may evaluate per-pair functions once; passed only to networks
                that declare ``takes_paired_edges`` (the edges are valid either
                way). Static.
            node_dataset_idx: The data set of each node's structure: it selects
                the node's readout head and E0 (see
                :func:`~mlip_eqx.models.energy_heads.node_energies_from_heads`);
                None: data set 0. A network that knows a single data set may
                leave the argument out of its signature: force fields pass it
                only to models of several data sets.

        Returns:
            The energy contribution of every node (including the E0 reference) in eV.
        """

    def weight_decay_mask(self) -> PyTree[bool]:
        """Which parameters get weight decay (when the optimizer masks it): the
        sub-trees that the class's ``weight_decay_where`` selects, or all.

        Works on the network itself and on its parameter tree filtered with
        ``eqx.filter`` (None for the non-arrays), e.g. ``force_field.params.network``.

        Returns:
            A PyTree with the structure of ``self``: True for the arrays to decay,
            False for the others (None stays None).
        """
        where = type(self).weight_decay_where
        if where is None:
            return jax.tree.map(lambda _: True, self)
        return eqx.tree_at(
            where,
            jax.tree.map(lambda _: False, self),
            replace_fn=lambda part: jax.tree.map(lambda _: True, part),
        )


def default_float_dtype() -> jnp.dtype:
    """float64 when ``jax_enable_x64`` is on, float32 otherwise."""
    return jnp.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def use_float_dtype(dtype: FloatDtypeName) -> None:
    """Makes this process build and run networks in ``dtype``.

    float64 turns ``jax_enable_x64`` on for the whole process (the global
    setting, so that it reaches every thread, such as a batch prefetcher; a
    thread-local ``jax.enable_x64`` context would not), with an INFO log when it
    was off. Arrays created before keep their dtype: call it before building
    anything. float32 needs ``jax_enable_x64`` off, since the networks compute in
    the default float dtype.

    Raises:
        ValueError: If ``dtype`` is "float32" and ``jax_enable_x64`` is on.
    """
    current = default_float_dtype().name
    if dtype == "float64":
        if current != "float64":
            logger.info("Computing in float64: turning jax_enable_x64 on.")
        jax.config.update("jax_enable_x64", True)
    elif current != "float32":
        raise ValueError(
            "float32 was asked for, but jax_enable_x64 is on in this process, so "
            "the networks compute in float64: ask for float64, or turn it off "
            '(jax.config.update("jax_enable_x64", False)) before building anything.'
        )
