"""ViSNet (Wang et al., "Enhancing geometric representations for molecules with
equivariant vector-scalar interactive message passing", Nature Communications 15,
2024) as an Equinox module, with the architecture of mlip 0.2.5's default
(non-legacy) ViSNet."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models.atomic_energies import atomic_energies_per_species
from mlip_eqx.models.blocks.edge_embedding import for_both_edges
from mlip_eqx.models.blocks.harmonics import edge_harmonics, parity_signs
from mlip_eqx.models.blocks.radial import (
    expnorm_basis,
    expnorm_parameters,
    polynomial_envelope,
    safe_norm,
)
from mlip_eqx.models.energy_heads import check_readout_heads, node_energies_from_heads
from mlip_eqx.models.mlip_network import MLIPNetwork, default_float_dtype
from mlip_eqx.models.registry import register_network
from mlip_eqx.models.visnet.config import VisnetConfig
from mlip_eqx.models.visnet.embedding import VisnetEmbedding
from mlip_eqx.models.visnet.layer import LAYER_NORM_EPSILON, VisnetLayer
from mlip_eqx.models.visnet.readout import VisnetReadoutHead
from mlip_eqx.models.visnet.vector_norm import normalise_vectors


@register_network
class Visnet(MLIPNetwork):
    """The ViSNet network: per-node energies from edge vectors and species.

    Edges get the exp-normal radial basis of their length (with its cosine
    cutoff), the spherical harmonics of degree 1..l_max ("norm" normalisation)
    of their direction and the polynomial envelope, which multiplies every
    message, so that energy and forces are continuous (C2) at the cutoff. The
    embedding gives scalar node and edge features, the vector features start at
    zero, and the layers follow; the scalars are layer-normalised, the vectors
    normalised by ``vecnorm_type``, and each readout head gives a readout;
    ``node_energy = scaling_mean + scaling_stdev * readout + E0(data set,
    species)``, with scaling from the DatasetInfo; the node's data set selects
    its head (see :func:`~mlip_eqx.models.energy_heads.node_energies_from_heads`).
    Padding (zero-length) edges get zero radial basis and envelope, so they carry
    no message.

    Attributes:
        config: Hyperparameters (see :class:`VisnetConfig`).
        dataset_info: Cutoff, energy scaling and E0.
        rbf_centres: Centres of the radial basis if trained, else None (then the
            initial values are constants).
        rbf_widths: Widths of the radial basis if trained, else None.
        embedding: Node and edge embedding.
        layers: The ViSNet layers.
        readout_norm: Layer normalisation of the scalars before the readout.
        readouts: One readout per head (``num_readout_heads``).
    """

    Config = VisnetConfig
    has_readout_heads = True
    takes_paired_edges = True

    config: VisnetConfig = eqx.field(static=True)
    dataset_info: DatasetInfo = eqx.field(static=True)
    rbf_centres: Float[Array, " num_rbf"] | None
    rbf_widths: Float[Array, " num_rbf"] | None
    embedding: VisnetEmbedding
    layers: tuple[VisnetLayer, ...]
    readout_norm: eqx.nn.LayerNorm
    readouts: tuple[VisnetReadoutHead, ...]

    def __init__(
        self,
        config: VisnetConfig,
        dataset_info: DatasetInfo,
        *,
        key: jax.Array | None = None,
    ):
        """Builds ViSNet with random parameters.

        Dense weights are Xavier-uniform with zero biases, species embeddings
        N(0, 1 / num_channels), layer norms start as the identity (flax's and so
        mlip's initialisers).

        Args:
            config: Hyperparameters.
            dataset_info: Statistics of the training set.
            key: Random key of the initial parameters; ``jax.random.key(0)`` if None.

        Raises:
            ValueError: If an explicit E0 map lacks one of the dataset's elements.
        """
        self.config = config
        self.dataset_info = dataset_info
        num_species = self.num_species
        atomic_energies_per_species(config.atomic_energies, dataset_info, num_species)
        check_readout_heads(config.num_readout_heads, dataset_info)
        dtype = default_float_dtype()
        key = jax.random.key(0) if key is None else key
        embedding_key, *keys = jax.random.split(
            key, 1 + config.num_layers + config.num_readout_heads
        )
        layer_keys, head_keys = keys[: config.num_layers], keys[config.num_layers :]
        if config.trainable_rbf:
            centres, widths = expnorm_parameters(self.cutoff, config.num_rbf)
            self.rbf_centres = jnp.asarray(centres, dtype)
            self.rbf_widths = jnp.asarray(widths, dtype)
        else:
            self.rbf_centres = self.rbf_widths = None
        channels = config.num_channels
        self.embedding = VisnetEmbedding(
            num_species, channels, config.num_rbf, dtype=dtype, key=embedding_key
        )
        self.layers = tuple(
            VisnetLayer(
                channels,
                num_heads=config.num_heads,
                activation=config.activation,
                attn_activation=config.attn_activation,
                vecnorm_type=config.vecnorm_type,
                update_edges=index < config.num_layers - 1,
                dtype=dtype,
                key=layer_key,
            )
            for index, layer_key in enumerate(layer_keys)
        )
        self.readout_norm = eqx.nn.LayerNorm(
            channels, eps=LAYER_NORM_EPSILON, dtype=dtype
        )
        self.readouts = tuple(
            VisnetReadoutHead(
                channels, activation=config.activation, dtype=dtype, key=head_key
            )
            for head_key in head_keys
        )

    @property
    def num_species(self) -> int:
        """Number of species: the dataset's number of elements."""
        return len(self.dataset_info.allowed_atomic_numbers)

    @property
    def cutoff(self) -> float:
        """The graph cutoff in Å."""
        return float(self.dataset_info.cutoff_distance_angstrom)

    def __call__(
        self,
        edge_vectors: Float[Array, "n_edge 3"],
        node_species: Int[Array, " n_node"],
        senders: Int[Array, " n_edge"],
        receivers: Int[Array, " n_edge"],
        paired_edges: bool = False,
        node_dataset_idx: Int[Array, " n_node"] | None = None,
    ) -> Float[Array, " n_node"]:
        """Energy of each node in eV (see :class:`MLIPNetwork`).

        With ``paired_edges`` (edge ``k + n_edge / 2`` reverses edge ``k``), the
        radial basis, the envelope and the edge features are computed once per
        pair until the first edge update makes the pair's features differ.
        """
        dtype = self.embedding.species_embedding.dtype
        with jax.named_scope("edge_embedding"):
            radial_basis, pair_envelope, harmonics = self._edge_functions(
                edge_vectors.astype(dtype), paired_edges
            )
            envelope = for_both_edges(pair_envelope) if paired_edges else pair_envelope
        with jax.named_scope("embedding"):
            scalars, edge_features = self.embedding(
                node_species, radial_basis, pair_envelope, senders, receivers
            )
        vectors = None  # all zero before the first layer
        for index, layer in enumerate(self.layers):
            with jax.named_scope(f"layer_{index}"):
                scalars, vectors, edge_features = layer(
                    scalars,
                    vectors,
                    edge_features,
                    harmonics,
                    envelope,
                    senders,
                    receivers,
                )
        with jax.named_scope("readouts"):
            normalised_scalars = jax.vmap(self.readout_norm)(scalars)
            normalised_vectors = normalise_vectors(vectors, self.config.vecnorm_type)
            head_outputs = jnp.stack(
                [
                    readout(normalised_scalars, normalised_vectors)
                    for readout in self.readouts
                ],
                axis=1,
            )
        return node_energies_from_heads(
            head_outputs,
            node_species,
            node_dataset_idx,
            self.dataset_info,
            self.config.atomic_energies,
            self.num_species,
        )

    def _edge_functions(
        self, edge_vectors: Float[Array, "n_edge 3"], paired_edges: bool
    ) -> tuple[
        Float[Array, "n_radial num_rbf"],
        Float[Array, " n_radial"],
        Float[Array, "n_edge components"],
    ]:
        """Radial basis and envelope of the edges (of the pairs, the first half,
        with ``paired_edges``) and harmonics of degree 1..l_max of every edge
        (a reversed edge's are its pair's times (-1)^l); zero-length (padding)
        edges get zero basis and envelope."""
        if paired_edges:
            edge_vectors = edge_vectors[: edge_vectors.shape[0] // 2]
        lengths, is_zero = safe_norm(edge_vectors)
        if self.rbf_centres is None:
            centres, widths = expnorm_parameters(self.cutoff, self.config.num_rbf)
        else:
            centres, widths = self.rbf_centres, self.rbf_widths
        dtype = edge_vectors.dtype
        basis = expnorm_basis(
            lengths,
            self.cutoff,
            jnp.asarray(centres, dtype),
            jnp.asarray(widths, dtype),
        )
        radial_basis = jnp.where(is_zero[:, None], 0.0, basis)
        envelope = jnp.where(is_zero, 0.0, polynomial_envelope(lengths, self.cutoff))
        directions = jnp.where(is_zero[:, None], 1.0, edge_vectors)
        harmonics = edge_harmonics(directions, self.config.l_max, normalization="norm")
        harmonics = harmonics[:, 1:]
        if paired_edges:
            signs = parity_signs(self.config.l_max, dtype)[1:]
            harmonics = jnp.concatenate([harmonics, harmonics * signs])
        return radial_basis, envelope, harmonics
