"""MACE (Batatia et al., "MACE: Higher Order Equivariant Message Passing Neural
Networks for Fast and Accurate Force Fields", 2022) as an Equinox module."""

from collections.abc import Callable

import e3nn_jax as e3nn
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models.atomic_energies import atomic_energies_per_species
from mlip_eqx.models.blocks.edge_embedding import embed_edges
from mlip_eqx.models.blocks.linear import EquivariantLinear
from mlip_eqx.models.blocks.pair_terms import (
    species_atomic_numbers,
    species_covalent_radii,
    transformed_lengths,
    zbl_node_energies,
)
from mlip_eqx.models.blocks.readouts import LinearReadout, NonLinearReadout
from mlip_eqx.models.energy_heads import check_readout_heads, node_energies_from_heads
from mlip_eqx.models.initialisers import normal
from mlip_eqx.models.mace.blocks import InteractionBlock, ProductBasisBlock
from mlip_eqx.models.mace.config import MaceConfig
from mlip_eqx.models.mlip_network import MLIPNetwork, default_float_dtype
from mlip_eqx.models.registry import register_network


class MaceLayer(eqx.Module):
    """One MACE layer: interaction, product basis, residual, readout heads.

    The first layer has no residual; instead a species-dependent linear map
    follows its interaction block. Later layers add a species-dependent linear map
    of their input (the residual) to the product basis output; so does the first
    one with ``config.first_layer_residual`` (and then it has no map after its
    interaction).
    """

    species_linear: EquivariantLinear
    interaction: InteractionBlock
    product_basis: ProductBasisBlock
    readouts: tuple[LinearReadout | NonLinearReadout, ...]
    has_residual: bool = eqx.field(static=True)

    def __init__(
        self,
        source_irreps: e3nn.Irreps,
        *,
        is_first: bool,
        is_last: bool,
        config: MaceConfig,
        num_species: int,
        avg_num_neighbors: float,
        dtype: DTypeLike,
        key: jax.Array,
    ):
        """Args:
        source_irreps: Irreps of the input node features.
        is_first: Whether this is the first layer (no residual).
        is_last: Whether this is the last layer (scalar output, non-linear readout).
        config: The MACE hyperparameters.
        num_species: Number of species.
        avg_num_neighbors: Normalisation of the neighbour sum.
        dtype: Dtype of the weights.
        key: Random key.
        """
        keys = jax.random.split(key, 3 + config.num_readout_heads)
        channels = config.num_channels
        if config.include_pseudotensors:
            interaction_irreps = e3nn.Irreps(e3nn.Irrep.iterator(config.l_max))
        else:
            interaction_irreps = e3nn.Irreps.spherical_harmonics(config.l_max)
        node_irreps = e3nn.Irreps.spherical_harmonics(config.resolved_node_symmetry)
        target_irreps = channels * (e3nn.Irreps("0e") if is_last else node_irreps)
        self.has_residual = not is_first or config.first_layer_residual
        self.interaction = InteractionBlock(
            source_irreps,
            channels * interaction_irreps,
            l_max=config.l_max,
            num_radial=config.num_bessel,
            avg_num_neighbors=avg_num_neighbors,
            activation=config.activation,
            dtype=dtype,
            key=keys[0],
            radial_hidden=config.radial_mlp_hidden,
            density_normalisation=config.density_normalisation,
        )
        interaction_out = self.interaction.irreps_out
        # The first layer's residual maps the scalar embedding: the other irreps
        # of its output are zero.
        self.species_linear = EquivariantLinear(
            source_irreps if self.has_residual else interaction_out,
            target_irreps.regroup() if self.has_residual else interaction_out,
            dtype=dtype,
            key=keys[1],
            num_species=num_species,
            force_irreps_out=is_first and self.has_residual,
        )
        self.product_basis = ProductBasisBlock(
            interaction_out,
            target_irreps,
            num_channels=channels,
            correlation=config.correlation,
            num_species=num_species,
            symmetric_basis=config.symmetric_tensor_product_basis,
            dtype=dtype,
            key=keys[2],
        )
        hidden_irreps, output_irreps = (e3nn.Irreps(i) for i in config.readout_irreps)
        self.readouts = tuple(
            NonLinearReadout(
                target_irreps, hidden_irreps, output_irreps, config.activation, dtype, k
            )
            if is_last
            else LinearReadout(target_irreps, output_irreps, dtype, k)
            for k in keys[3:]
        )

    @property
    def irreps_out(self) -> e3nn.Irreps:
        return self.product_basis.linear.irreps_out

    def __call__(
        self,
        node_features: e3nn.IrrepsArray,
        node_species: Int[Array, " n_node"],
        harmonics: Float[Array, "n_edge harmonics"],
        radial_features: Float[Array, "n_radial num_radial"],
        senders: Int[Array, " n_edge"],
        receivers: Int[Array, " n_edge"],
    ) -> tuple[Float[Array, "n_node num_heads"], e3nn.IrrepsArray]:
        """Returns (the readout of every head [n_node, num_heads], new features)."""
        residual = None
        if self.has_residual:
            with jax.named_scope("residual"):
                residual = self.species_linear(node_features, node_species)
        with jax.named_scope("interaction"):
            node_features = self.interaction(
                node_features, harmonics, radial_features, senders, receivers
            )
        if not self.has_residual:
            with jax.named_scope("species_linear"):
                node_features = self.species_linear(node_features, node_species)
        with jax.named_scope("product_basis"):
            node_features = self.product_basis(node_features, node_species)
        if residual is not None:
            node_features = node_features + residual
        with jax.named_scope("readouts"):
            energies = jnp.stack(
                [readout(node_features).array[:, 0] for readout in self.readouts],
                axis=1,
            )
        return energies, node_features


def _decayed_parts(network: "Mace") -> list[eqx.Module]:
    """The interactions' down-projections (``linear_down``) and the symmetric
    contractions: the parameters that get weight decay, as in the original
    library."""
    return [
        module
        for layer in network.layers
        for module in (
            layer.interaction.linear_down,
            layer.product_basis.symmetric_contraction,
        )
    ]


@register_network
class Mace(MLIPNetwork):
    """The MACE network: per-node energies from edge vectors and species.

    ``node_energy = scaling_mean + scaling_stdev * (sum over layers of the
    readouts of the node's head) + E0(data set, species)``, with scaling from the
    DatasetInfo; the node's data set selects its head (see
    :func:`~mlip_eqx.models.energy_heads.node_energies_from_heads`).

    Attributes:
        config: Hyperparameters (see :class:`MaceConfig`).
        dataset_info: Cutoff, neighbour statistics, energy scaling and E0.
        embedding: Species embedding, [num_species, num_channels].
        layers: The MACE layers.
    """

    Config = MaceConfig
    has_readout_heads = True
    takes_paired_edges = True
    weight_decay_where = staticmethod(_decayed_parts)

    config: MaceConfig = eqx.field(static=True)
    dataset_info: DatasetInfo = eqx.field(static=True)
    embedding: Float[Array, "num_species num_channels"]
    layers: tuple[MaceLayer, ...]

    def __init__(
        self,
        config: MaceConfig,
        dataset_info: DatasetInfo,
        *,
        key: jax.Array | None = None,
    ):
        """Builds MACE with random parameters.

        Args:
            config: Hyperparameters.
            dataset_info: Statistics of the training set.
            key: Random key of the initial parameters; ``jax.random.key(0)`` if None.

        Raises:
            ValueError: If ``config.num_species`` is smaller than the number of
                elements of the dataset, or an explicit E0 map lacks one of them.
        """
        self.config = config
        self.dataset_info = dataset_info
        num_species = self.num_species
        atomic_energies_per_species(config.atomic_energies, dataset_info, num_species)
        check_readout_heads(config.num_readout_heads, dataset_info)
        key = jax.random.key(0) if key is None else key
        self.embedding, self.layers = _initial_parameters(
            config, num_species, self.avg_num_neighbors, key
        )

    @property
    def num_species(self) -> int:
        """Number of species slots (config, or the dataset's number of elements)."""
        if self.config.num_species is not None:
            return self.config.num_species
        return len(self.dataset_info.allowed_atomic_numbers)

    @property
    def avg_num_neighbors(self) -> float:
        """Normalisation of the neighbour sums (config, or the dataset's)."""
        if self.config.avg_num_neighbors is not None:
            return self.config.avg_num_neighbors
        return self.dataset_info.avg_num_neighbors

    @property
    def avg_r_min(self) -> float | None:
        """Typical shortest edge in Å for the radial normalisation, or None (no
        normalisation: not asked for, or the lengths are transformed)."""
        if (
            not self.config.normalise_radial_embedding
            or self.config.distance_transform != "none"
        ):
            return None
        if self.config.avg_r_min is not None:
            return self.config.avg_r_min
        return self.dataset_info.avg_r_min_angstrom

    @property
    def _species_atomic_numbers(self) -> np.ndarray:
        """The atomic number of every species slot."""
        return species_atomic_numbers(
            self.dataset_info.allowed_atomic_numbers, self.num_species
        )

    def _distance_transform(
        self,
        senders: Int[Array, " n_edge"],
        receivers: Int[Array, " n_edge"],
        paired_edges: bool,
        node_species: Int[Array, " n_node"],
        dtype: DTypeLike,
    ) -> Callable[[Array], Array] | None:
        """The transform of the lengths of the edges whose radial features are
        computed (the first half of paired edges), or None."""
        kind = self.config.distance_transform
        if kind == "none":
            return None
        if paired_edges:
            half = senders.shape[0] // 2
            senders, receivers = senders[:half], receivers[:half]
        radii = jnp.asarray(species_covalent_radii(self._species_atomic_numbers), dtype)
        radii_sum = radii[node_species[senders]] + radii[node_species[receivers]]
        return lambda lengths: transformed_lengths(lengths, radii_sum, kind)

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
        radial basis, radial MLPs and harmonics are evaluated for the first half.
        """
        dtype = self.embedding.dtype
        edge_vectors = edge_vectors.astype(dtype)
        with jax.named_scope("edge_embedding"):
            radial_features, harmonics = embed_edges(
                edge_vectors,
                paired_edges=paired_edges,
                cutoff=self.dataset_info.cutoff_distance_angstrom,
                num_basis=self.config.num_bessel,
                envelope=self.config.radial_envelope,
                r_min=self.avg_r_min,
                l_max=self.config.l_max,
                reverse_directions=True,
                envelope_power=self.config.polynomial_cutoff_power,
                transform=self._distance_transform(
                    senders, receivers, paired_edges, node_species, dtype
                ),
            )
        node_features = e3nn.IrrepsArray(
            self.config.num_channels * e3nn.Irreps("0e"),
            self.embedding[node_species] * self.num_species**-0.5,
        )
        readout_sum = jnp.zeros(
            (node_species.shape[0], self.config.num_readout_heads), dtype
        )
        for index, layer in enumerate(self.layers):
            with jax.named_scope(f"layer_{index}"):
                energies, node_features = layer(
                    node_features,
                    node_species,
                    harmonics,
                    radial_features,
                    senders,
                    receivers,
                )
            readout_sum = readout_sum + energies
        if self.config.pair_repulsion:
            with jax.named_scope("pair_repulsion"):
                numbers = jnp.asarray(self._species_atomic_numbers)[node_species]
                repulsion = zbl_node_energies(
                    edge_vectors,
                    senders,
                    receivers,
                    numbers,
                    self.config.polynomial_cutoff_power,
                )
            readout_sum = readout_sum + repulsion[:, None]
        return node_energies_from_heads(
            readout_sum,
            node_species,
            node_dataset_idx,
            self.dataset_info,
            self.config.atomic_energies,
            self.num_species,
        )


def _initial_parameters(
    config: MaceConfig, num_species: int, avg_num_neighbors: float, key: jax.Array
) -> tuple[Float[Array, "num_species num_channels"], tuple[MaceLayer, ...]]:
    """Draws the species embedding and builds the layers."""
    dtype = default_float_dtype()
    embedding_key, *layer_keys = jax.random.split(key, 1 + config.num_layers)
    embedding = normal(embedding_key, (num_species, config.num_channels), dtype)
    layers = []
    source_irreps = config.num_channels * e3nn.Irreps("0e")
    for index, layer_key in enumerate(layer_keys):
        layer = MaceLayer(
            source_irreps,
            is_first=index == 0,
            is_last=index == config.num_layers - 1,
            config=config,
            num_species=num_species,
            avg_num_neighbors=avg_num_neighbors,
            dtype=dtype,
            key=layer_key,
        )
        layers.append(layer)
        source_irreps = layer.irreps_out
    return embedding, tuple(layers)
