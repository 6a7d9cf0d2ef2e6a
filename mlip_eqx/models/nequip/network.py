"""NequIP (Batzner et al., "E(3)-equivariant graph neural networks for
data-efficient and accurate interatomic potentials", 2022) as an Equinox module,
with the architecture of the original mlip library's version 0.1."""

import e3nn_jax as e3nn
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PyTree

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models.atomic_energies import atomic_energies_per_species
from mlip_eqx.models.blocks.edge_embedding import embed_edges
from mlip_eqx.models.blocks.linear import EquivariantLinear
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
    even scalars (to half as many, then to one) give the readout;
    ``node_energy = scaling_mean + scaling_stdev * readout + E0(species)``, with
    scaling from the DatasetInfo. The spherical harmonics are those of the edge
    vectors (sender to receiver), as in the original library.

    Attributes:
        config: Hyperparameters (see :class:`NequipConfig`).
        dataset_info: Cutoff, neighbour statistics, energy scaling and E0.
        embedding: Species embedding, [num_species, even scalars of node_irreps].
        layers: The NequIP layers.
        readout_hidden: Even scalars to half as many.
        readout_output: To the energy.
    """

    Config = NequipConfig

    config: NequipConfig = eqx.field(static=True)
    dataset_info: DatasetInfo = eqx.field(static=True)
    embedding: Float[Array, "num_species scalars"]
    layers: tuple[NequipLayer, ...]
    readout_hidden: EquivariantLinear
    readout_output: EquivariantLinear

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
        dtype = default_float_dtype()
        key = jax.random.key(0) if key is None else key
        embedding_key, hidden_key, output_key, *layer_keys = jax.random.split(
            key, 3 + config.num_layers
        )
        node_irreps = e3nn.Irreps(config.node_irreps)
        num_scalars = node_irreps.count("0e")
        self.embedding = normal(embedding_key, (num_species, num_scalars), dtype)
        labelled, nonzero = node_irreps, e3nn.Irreps(f"{num_scalars}x0e")
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
                )
            )
            labelled, nonzero = irreps.labelled_out, irreps.nonzero_out
        self.layers = tuple(layers)
        hidden = e3nn.Irreps(f"{nonzero.count('0e') // 2}x0e")
        self.readout_hidden = EquivariantLinear(
            nonzero, hidden, dtype=dtype, key=hidden_key
        )
        self.readout_output = EquivariantLinear(
            hidden, e3nn.Irreps("0e"), dtype=dtype, key=output_key
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
        with jax.named_scope("readout"):
            readout = self.readout_output(self.readout_hidden(node_features))
        info = self.dataset_info
        atomic_energies = atomic_energies_per_species(
            self.config.atomic_energies, info, self.num_species
        )
        return (
            info.scaling_mean
            + info.scaling_stdev * readout.array[:, 0]
            + jnp.asarray(atomic_energies, dtype)[node_species]
        )

    def weight_decay_mask(self) -> PyTree[bool]:
        """True for every array: the original library decays all of NequIP's
        parameters."""
        return jax.tree.map(lambda _: True, self)
