"""Equivariant message passing: the tensor products of the sender features with the
spherical harmonics of the edge direction, weighted per path and channel by radial
weights and summed over the neighbours (MACE's and NequIP's convolution).

e3nn-jax lays features out channel-major ([..., channel, component]) and evaluates
each path as an einsum with its Clebsch-Gordan tensor: batched matrix products whose
inner sizes are 1-5, and reductions over the minor axis of size 3-5 in their
derivatives. On CPU these dominate a training step (forces in the loss need the
second derivative). Here the edge arrays are component-major ([edge, component,
channel]): the harmonics are contracted with the Clebsch-Gordan coefficients in one
matrix product per source irrep, and everything else is broadcast products and sums
that vectorise over the channels. The function is the same as e3nn's
``tensor_product`` with "component" normalisation (tested against it).
"""

import dataclasses

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int

from mlip_eqx.utils.precision_cache import cache_per_precision

# The messages of one layer are evaluated in chunks of edges where they would
# take more than this many bytes at once (256 MiB: the training batches of
# MACE-MP-0-sized models stay whole; a 512-atom cell of such a model is 4 chunks).
MESSAGE_CHUNK_BYTES = 1 << 28


@dataclasses.dataclass(frozen=True)
class SourceGroup:
    """The message components computed from one irrep of the sender features.

    Attributes:
        source: Slice bounds of the irrep's components in one channel.
        components: Message components (indices in message order) it produces.
        paths: Path of each of those components.
        coefficients: [harmonic comp, component, source comp] coupling, flattened.
    """

    source: tuple[int, int]
    components: tuple[int, ...]
    paths: tuple[int, ...]
    coefficients: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class MessageCoupling:
    """The static structure of the messages of one message-passing layer.

    Per channel, the messages are the sender features (only the irreps that are
    targets) and their tensor products with the spherical harmonics of degree
    1..l_max, regrouped by irrep. Each (source irrep, harmonic degree, output irrep)
    path gets its own radial weight per channel.

    Attributes:
        source_irreps: Irreps of the sender features (regrouped).
        num_channels: Multiplicity of every irrep of the sender features.
        harmonics_dim: Number of harmonic components (degrees 0..l_max).
        path_irreps: Output irrep of each path, in message order.
        path_sources: (sender irrep, harmonic degree) of each path, in message order.
        groups: The components computed from each source irrep.
    """

    source_irreps: e3nn.Irreps
    num_channels: int
    harmonics_dim: int
    path_irreps: tuple[e3nn.Irrep, ...]
    path_sources: tuple[tuple[e3nn.Irrep, int], ...]
    groups: tuple[SourceGroup, ...]

    @property
    def irreps(self) -> e3nn.Irreps:
        """Irreps of the messages of all channels (path-major within each irrep)."""
        return e3nn.Irreps(
            [(self.num_channels, ir) for ir in self.path_irreps]
        ).regroup()

    @property
    def num_paths(self) -> int:
        return len(self.path_irreps)


@cache_per_precision(maxsize=32)
def message_coupling(
    source_irreps: e3nn.Irreps, l_max: int, target_irreps: e3nn.Irreps
) -> MessageCoupling:
    """The coupling of sender features (every irrep with the same multiplicity) with
    the harmonics of degree 0..l_max, keeping output irreps in ``target_irreps``.

    Raises:
        ValueError: If the irreps of ``source_irreps`` have different multiplicities.
    """
    source_irreps = e3nn.Irreps(source_irreps).regroup()
    multiplicities = {mul for mul, _ in source_irreps}
    if len(multiplicities) != 1:
        raise ValueError(
            "Messages need one multiplicity for all sender irreps, got "
            f"{source_irreps}."
        )
    per_channel = e3nn.Irreps([ir for _, ir in source_irreps])
    harmonics_irreps = e3nn.Irreps.spherical_harmonics(l_max)

    def couple() -> e3nn.IrrepsArray:
        basis = e3nn.IrrepsArray(per_channel, np.eye(per_channel.dim)[:, None, :])
        harmonics = e3nn.IrrepsArray(
            harmonics_irreps, np.eye(harmonics_irreps.dim)[None, :, :]
        )
        return reference_messages(basis, harmonics, e3nn.Irreps(target_irreps))

    # One compiled program, not one per operation; concrete even inside a trace.
    coupled = jax.jit(couple).lower().compile()()
    # [source comp, harmonic comp, message comp]
    coefficients = np.asarray(coupled.array, dtype=np.float64)
    path_irreps = tuple(ir for mul, ir in coupled.irreps for _ in range(mul))
    path_sources = _path_sources(per_channel, l_max, e3nn.Irreps(target_irreps))
    if tuple(ir for ir, _ in path_sources) != path_irreps:
        raise RuntimeError("The message paths are not in e3nn's order.")
    path_of_component = np.repeat(
        np.arange(len(path_irreps)), [ir.dim for ir in path_irreps]
    )
    groups = []
    for source in per_channel.slices():
        block = coefficients[source]  # [source comp, harmonic comp, message comp]
        components = np.nonzero(np.any(np.abs(block) > 1e-9, axis=(0, 1)))[0]
        if components.size == 0:
            continue
        block = np.transpose(block[:, :, components], (1, 2, 0))
        groups.append(
            SourceGroup(
                source=(source.start, source.stop),
                components=tuple(int(k) for k in components),
                paths=tuple(int(path_of_component[k]) for k in components),
                coefficients=tuple(float(c) for c in block.ravel()),
            )
        )
    return MessageCoupling(
        source_irreps=source_irreps,
        num_channels=multiplicities.pop(),
        harmonics_dim=harmonics_irreps.dim,
        path_irreps=path_irreps,
        path_sources=tuple(source for _, source in path_sources),
        groups=tuple(groups),
    )


def _path_sources(
    per_channel: e3nn.Irreps, l_max: int, target_irreps: e3nn.Irreps
) -> list[tuple[e3nn.Irrep, tuple[e3nn.Irrep, int]]]:
    """(output irrep, (sender irrep, harmonic degree)) of every path in the order
    of :func:`reference_messages`: generated as e3nn's tensor products do, then
    sorted stably by output irrep (the regrouping)."""
    generated = [(ir, (ir, 0)) for _, ir in per_channel if ir in target_irreps]
    for _, source in per_channel:
        for degree in range(1, l_max + 1):
            for ir_out in source * e3nn.Irrep(degree, (-1) ** degree):
                if ir_out in target_irreps:
                    generated.append((ir_out, (source, degree)))
    return sorted(generated, key=lambda path: path[0])


@cache_per_precision(maxsize=32)
def message_couplings(
    source_irreps: e3nn.Irreps, l_max: int, target_irreps: e3nn.Irreps
) -> tuple[MessageCoupling, ...]:
    """The couplings of sender features whose irreps have different multiplicities
    (e.g. NequIP's ``128x0e + 64x1o``): one :func:`message_coupling` per
    multiplicity, in the order in which the multiplicities first appear in the
    regrouped ``source_irreps``; multiplicities whose irreps have no path to
    ``target_irreps`` are left out. Evaluate them with :func:`summed_grouped_messages`.
    """
    source_irreps = e3nn.Irreps(source_irreps).regroup()
    target_irreps = e3nn.Irreps(target_irreps)
    couplings = []
    for mul in dict.fromkeys(mul for mul, _ in source_irreps):
        group = e3nn.Irreps([(m, ir) for m, ir in source_irreps if m == mul])
        per_channel = e3nn.Irreps([ir for _, ir in group])
        if _path_sources(per_channel, l_max, target_irreps):
            couplings.append(message_coupling(group, l_max, target_irreps))
    return tuple(couplings)


def reference_messages(
    sender_features: e3nn.IrrepsArray,
    harmonics: e3nn.IrrepsArray,
    target_irreps: e3nn.Irreps,
) -> e3nn.IrrepsArray:
    """The messages with e3nn: kept sender irreps (times the degree-0 harmonic) and
    tensor products with the harmonics of degree >= 1, regrouped.

    Normalisations are explicit so that e3nn's global configuration cannot change
    the model.
    """
    constant = harmonics.filter(keep="0e")
    parts = []
    kept = sender_features.filter(keep=target_irreps)
    if kept.irreps.dim > 0:
        parts.append(
            e3nn.tensor_product(
                kept,
                constant,
                filter_ir_out=target_irreps,
                irrep_normalization="component",
            )
        )
    higher = harmonics.filter(drop="0e")
    if higher.irreps.dim > 0:
        parts.append(
            e3nn.tensor_product(
                sender_features,
                higher,
                filter_ir_out=target_irreps,
                irrep_normalization="component",
            )
        )
    return e3nn.concatenate(parts).regroup()


def summed_messages(
    coupling: MessageCoupling,
    node_features: e3nn.IrrepsArray,
    harmonics: Float[Array, "n_edge harmonics"],
    radial_weights: Float[Array, "n_edge paths_x_channels"],
    senders: Int[Array, " n_edge"],
    receivers: Int[Array, " n_edge"],
    edge_chunk_size: int | None = None,
) -> e3nn.IrrepsArray:
    """Sum over each node's incoming edges of the radially weighted messages.

    Args:
        coupling: The message structure (see :func:`message_coupling`).
        node_features: [n_node, channels x source irreps].
        harmonics: :func:`~mlip_eqx.models.blocks.harmonics.edge_harmonics` of each
            edge's direction.
        radial_weights: One weight per (path, channel), path-major.
        senders: Sending node of each edge.
        receivers: Receiving node of each edge.
        edge_chunk_size: Evaluate the messages of this many edges at a time
            (None: :func:`message_chunk_size`'s choice).

    Returns:
        [n_node, ``coupling.irreps``], the unnormalised neighbour sum.
    """
    channels = coupling.num_channels
    num_nodes, num_edges = node_features.shape[0], harmonics.shape[0]
    features = jnp.swapaxes(node_features.mul_to_axis(channels).array, 1, 2)
    weights = radial_weights.reshape(num_edges, coupling.num_paths, channels)
    # Split once instead of slicing per use: the transpose of a split is one
    # concatenation, that of every slice a full-size padded array. Edge arrays are
    # gathered and summed per source irrep, so that only node arrays are split
    # and concatenated.
    bounds = sorted({b for group in coupling.groups for b in group.source})
    node_blocks = jnp.split(
        features[:, bounds[0] : bounds[-1]], np.cumsum(np.diff(bounds))[:-1], axis=1
    )
    node_blocks = dict(zip(zip(bounds, bounds[1:]), node_blocks))  # [N, source, C]
    chunk = message_chunk_size(coupling, num_edges, harmonics.dtype)
    if edge_chunk_size is not None:
        chunk = min(edge_chunk_size, num_edges)
    if chunk >= num_edges:
        sums = _group_sums(
            coupling, node_blocks, harmonics, weights, senders, receivers, num_nodes
        )
    else:
        sums = _chunked_group_sums(
            coupling, node_blocks, (harmonics, weights, senders, receivers), chunk
        )
    summed = jnp.concatenate(sums, axis=1)  # [N, all comps (group order), C]
    return _to_irreps_array(coupling, summed)


def message_chunk_size(
    coupling: MessageCoupling, num_edges: int, dtype: DTypeLike
) -> int:
    """The number of edges whose messages are evaluated at once: all of them,
    unless their messages would take more than ``MESSAGE_CHUNK_BYTES`` (then
    the largest multiple of 1,024 edges that fits, at least 1,024).

    The sum is the same either way (up to the order of floating-point
    additions); chunks bound the memory of the messages and of their
    derivatives, which is what large structures run out of (e.g. 4,096 atoms
    with MACE-MP-0 medium: 320,000 edges and 45 GB in one piece).
    """
    components = sum(len(group.components) for group in coupling.groups)
    edge_bytes = components * coupling.num_channels * np.dtype(dtype).itemsize
    if num_edges * edge_bytes <= MESSAGE_CHUNK_BYTES:
        return num_edges
    return max(1024, MESSAGE_CHUNK_BYTES // edge_bytes // 1024 * 1024)


def _group_sums(
    coupling: MessageCoupling,
    node_blocks: dict[tuple[int, int], Float[Array, "n_node source channels"]],
    harmonics: Float[Array, "n_edge harmonics"],
    weights: Float[Array, "n_edge paths channels"],
    senders: Int[Array, " n_edge"],
    receivers: Int[Array, " n_edge"],
    num_nodes: int,
) -> list[Float[Array, "n_node components channels"]]:
    """The neighbour sums of the messages of each source group, of these edges."""
    num_edges = harmonics.shape[0]
    path_weights = jnp.split(weights, coupling.num_paths, axis=1)  # [E, 1, C] each
    sums = []
    for group in coupling.groups:
        start, stop = group.source
        num_components = len(group.components)
        with jax.named_scope("gather"):
            sender = node_blocks[start, stop][senders]  # [E, source, C]
        with jax.named_scope("tensor_product"):
            coefficients = np.asarray(group.coefficients, harmonics.dtype).reshape(
                coupling.harmonics_dim, -1
            )
            coupled = (harmonics @ coefficients).reshape(
                num_edges, num_components, stop - start
            )  # [E, comp, source]
            products = jnp.sum(coupled[:, :, :, None] * sender[:, None], axis=2)
        with jax.named_scope("radial_weighting"):
            messages = products * _per_component(path_weights, group.paths)
        with jax.named_scope("scatter"):
            sums.append(
                jax.ops.segment_sum(messages, receivers, num_segments=num_nodes)
            )
    return sums


def _chunked_group_sums(
    coupling: MessageCoupling,
    node_blocks: dict[tuple[int, int], Float[Array, "n_node source channels"]],
    edges: tuple[Array, Array, Array, Array],
    chunk: int,
) -> list[Float[Array, "n_node components channels"]]:
    """:func:`_group_sums` accumulated over chunks of ``chunk`` edges by a scan.

    Each chunk's messages are recomputed in the backward pass
    (``jax.checkpoint``), so that only one chunk's intermediates are alive at a
    time; the running sums are updated outside the checkpoint, so the scan
    keeps no per-chunk copy of them. The edges are padded to whole chunks with
    zero radial weights (no message).
    """
    num_nodes = next(iter(node_blocks.values())).shape[0]
    num_edges = edges[0].shape[0]
    num_chunks = -(-num_edges // chunk)
    padding = num_chunks * chunk - num_edges
    chunked = tuple(
        jnp.pad(array, [(0, padding)] + [(0, 0)] * (array.ndim - 1)).reshape(
            num_chunks, chunk, *array.shape[1:]
        )
        for array in edges
    )

    @jax.checkpoint
    def chunk_sums(blocks, chunk_edges):
        return _group_sums(coupling, blocks, *chunk_edges, num_nodes)

    def accumulate(sums, chunk_edges):
        added = chunk_sums(node_blocks, chunk_edges)
        return [total + part for total, part in zip(sums, added)], None

    # The first chunk starts the sums: zeros would lack the inputs' varying
    # mesh axes inside shard_map, which a scan's carry must keep.
    first = chunk_sums(node_blocks, tuple(array[0] for array in chunked))
    sums, _ = jax.lax.scan(accumulate, first, tuple(array[1:] for array in chunked))
    return sums


def _per_component(
    path_weights: list[Float[Array, "n_edge 1 channels"]], paths: tuple[int, ...]
) -> Float[Array, "n_edge components channels"]:
    """The weight of each component's path, by broadcasting runs of equal paths."""
    runs, start = [], 0
    for index in range(1, len(paths) + 1):
        if index == len(paths) or paths[index] != paths[start]:
            weight = path_weights[paths[start]]
            runs.append(
                jnp.broadcast_to(
                    weight, (weight.shape[0], index - start, weight.shape[2])
                )
            )
            start = index
    return jnp.concatenate(runs, axis=1)


def _to_irreps_array(
    coupling: MessageCoupling, summed: Float[Array, "n_node components channels"]
) -> e3nn.IrrepsArray:
    """Reorders [n_node, components in group order, C] into e3nn's layout."""
    num_nodes, _, channels = summed.shape
    group_order = [k for group in coupling.groups for k in group.components]
    summed = summed[:, np.argsort(group_order), :]  # message order
    chunks, first = [], 0
    for mul, ir in coupling.irreps:
        num_paths = mul // channels
        block = summed[:, first : first + num_paths * ir.dim, :]
        block = block.reshape(num_nodes, num_paths, ir.dim, channels)
        chunks.append(jnp.swapaxes(block, 2, 3).reshape(num_nodes, mul, ir.dim))
        first += num_paths * ir.dim
    return e3nn.from_chunks(coupling.irreps, chunks, (num_nodes,), summed.dtype)


def summed_grouped_messages(
    couplings: tuple[MessageCoupling, ...],
    node_features: e3nn.IrrepsArray,
    harmonics: Float[Array, "n_edge harmonics"],
    radial_weights: Float[Array, "n_edge weights"],
    senders: Int[Array, " n_edge"],
    receivers: Int[Array, " n_edge"],
) -> e3nn.IrrepsArray:
    """:func:`summed_messages` of the couplings of :func:`message_couplings`.

    Args:
        couplings: One coupling per multiplicity of the sender irreps.
        node_features: [n_node, sender irreps] (any order of the irreps).
        harmonics: Spherical harmonics of each edge's direction.
        radial_weights: The weights of each coupling (one per path and channel,
            path-major), concatenated in the order of ``couplings``.
        senders: Sending node of each edge.
        receivers: Receiving node of each edge.

    Returns:
        [n_node, messages], the couplings' messages concatenated in their order
        (not regrouped), unnormalised neighbour sums.
    """
    sizes = [coupling.num_paths * coupling.num_channels for coupling in couplings]
    weights = jnp.split(radial_weights, np.cumsum(sizes)[:-1], axis=1)
    summed = [
        summed_messages(
            coupling,
            node_features.filter(keep=coupling.source_irreps).regroup(),
            harmonics,
            coupling_weights,
            senders,
            receivers,
        )
        for coupling, coupling_weights in zip(couplings, weights)
    ]
    return e3nn.concatenate(summed)
