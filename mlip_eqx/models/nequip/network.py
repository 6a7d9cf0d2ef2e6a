"""NequIP (Batzner et al., "E(3)-equivariant graph neural networks for
data-efficient and accurate interatomic potentials", 2022) as an Equinox module,
with the architecture of the original mlip library's version 0.1 by default and
that of its version 0.2 by config options (``label_zero_irreps``,
``self_connection_fan_in_species``, ``use_residual_connection``, the gate's
activations)."""

import e3nn_jax as e3nn
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models.atomic_energies import atomic_energies_per_species
from mlip_eqx.models.blocks.edge_embedding import embed_edges
from mlip_eqx.models.blocks.linear import EquivariantLinear
from mlip_eqx.models.energy_heads import check_readout_heads, node_energies_from_heads
from mlip_eqx.models.initialisers import normal
from mlip_eqx.models.mlip_network import MLIPNetwork, default_float_dtype
from mlip_eqx.models.nequip.config import NequipConfig
from mlip_eqx.models.nequip.irreps import layer_irreps
from mlip_eqx.models.nequip.layer import NequipLayer
from mlip_eqx.models.registry import register_network


@register_network
class Nequip(MLIPNetwork):
    """The NequIP network: per-node energies from edge vectors and species.

    The one-hot species are mapped linearly to the even scalars of
    ``node_irreps`` (``embedding``), the layers follow, then two linear maps of the
    even scalars (to half as many, then to one) give the readout of each head;
    ``node_energy = scaling_mean + scaling_stdev * readout + E0(data set,
    species)``, with scaling from the DatasetInfo; the node's data set selects
    its head (see :func:`~mlip_eqx.models.energy_heads.node_energies_from_heads`).
    The spherical harmonics are those of the edge vectors (sender to receiver),
    as in the original library.

    Attributes:
        config: Hyperparameters (see :class:`NequipConfig`).
        dataset_info: Cutoff, neighbour statistics, energy scaling and E0.
        embedding: Species embedding, [num_species, even scalars of node_irreps].
        layers: The NequIP layers.
        readouts: One readout per head.
    """

    Config = NequipConfig
    has_readout_heads = True
    takes_paired_edges = True

    config: NequipConfig = eqx.field(static=True)
    dataset_info: DatasetInfo = eqx.field(static=True)
    embedding: Float[Array, "num_species scalars"]
    layers: tuple[NequipLayer, ...]
    readouts: tuple["NequipReadout", ...]

    def __init__(
        self,
        config: NequipConfig,
        dataset_info: DatasetInfo,
        *,
        key: jax.Array | None = None,
    ):
        """Builds NequIP with random parameters.

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
        embedding_key, readout_key, *layer_keys = jax.random.split(
            key, 2 + config.num_layers
        )
        node_irreps = e3nn.Irreps(config.node_irreps)
        num_scalars = node_irreps.count("0e")
        self.embedding = normal(embedding_key, (num_species, num_scalars), dtype)
        nonzero = e3nn.Irreps(f"{num_scalars}x0e")
        labelled = node_irreps if config.label_zero_irreps else nonzero
        layers = []
        for layer_key in layer_keys:
            irreps = layer_irreps(node_irreps, labelled, nonzero, config.l_max)
            layers.append(
                NequipLayer(
                    irreps,
                    l_max=config.l_max,
                    num_radial=config.num_bessel,
                    radial_hidden=(config.radial_net_n_hidden,)
                    * config.radial_net_n_layers,
                    radial_activation=config.radial_net_nonlinearity,
                    radial_variance_scale=config.scalar_mlp_std,
                    avg_num_neighbors=self.avg_num_neighbors,
                    num_species=num_species,
                    dtype=dtype,
                    key=layer_key,
                    self_connection=config.use_residual_connection,
                    self_connection_fan_in_species=(
                        config.self_connection_fan_in_species
                    ),
                    gate_activations=(
                        config.gate_even_activation,
                        config.gate_odd_activation,
                    ),
                )
            )
            labelled, nonzero = irreps.labelled_out, irreps.nonzero_out
        self.layers = tuple(layers)
        self.readouts = tuple(
            NequipReadout(nonzero, dtype, head_key)
            for head_key in jax.random.split(readout_key, config.num_readout_heads)
        )

    @property
    def num_species(self) -> int:
        """Number of species: the dataset's number of elements."""
        return len(self.dataset_info.allowed_atomic_numbers)

    @property
    def avg_num_neighbors(self) -> float:
        """Normalisation of the neighbour sums (config, or the dataset's)."""
        if self.config.avg_num_neighbors is not None:
            return self.config.avg_num_neighbors
        return self.dataset_info.avg_num_neighbors

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
        with jax.named_scope("edge_embedding"):
            radial_features, harmonics = embed_edges(
                edge_vectors.astype(dtype),
                paired_edges=paired_edges,
                cutoff=self.dataset_info.cutoff_distance_angstrom,
                num_basis=self.config.num_bessel,
                envelope=self.config.radial_envelope,
                r_min=None,
                l_max=self.config.l_max,
                reverse_directions=False,
            )
        node_features = e3nn.IrrepsArray(
            self.layers[0].irreps.nonzero_in,
            self.embedding[node_species] * self.num_species**-0.5,
        )
        for index, layer in enumerate(self.layers):
            with jax.named_scope(f"layer_{index}"):
                node_features = layer(
                    node_features,
                    node_species,
                    harmonics,
                    radial_features,
                    senders,
                    receivers,
                )
        with jax.named_scope("readouts"):
            head_outputs = jnp.stack(
                [readout(node_features) for readout in self.readouts], axis=1
            )
        return node_energies_from_heads(
            head_outputs,
            node_species,
            node_dataset_idx,
            self.dataset_info,
            self.config.atomic_energies,
            self.num_species,
        )


class NequipReadout(eqx.Module):
    """One readout head: two linear maps of the even scalars, to half as many,
    then to one number per node."""

    hidden: EquivariantLinear
    output: EquivariantLinear

    def __init__(self, irreps_in: e3nn.Irreps, dtype, key: jax.Array):
        """Args:
        irreps_in: Irreps of the last layer's (nonzero) node features.
        dtype: Dtype of the weights.
        key: Random key.
        """
        hidden_key, output_key = jax.random.split(key)
        hidden = e3nn.Irreps(f"{irreps_in.count('0e') // 2}x0e")
        self.hidden = EquivariantLinear(irreps_in, hidden, dtype=dtype, key=hidden_key)
        self.output = EquivariantLinear(
            hidden, e3nn.Irreps("0e"), dtype=dtype, key=output_key
        )

    def __call__(self, node_features: e3nn.IrrepsArray) -> Float[Array, " n_node"]:
        """The head's output for every node."""
        return self.output(self.hidden(node_features)).array[:, 0]
