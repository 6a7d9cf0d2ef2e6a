"""A small, fast MLIPNetwork for training tests: learned pair energies.

Each edge contributes ``MLP(radial basis of |r|, species of both ends)`` to its
receiver's energy, smoothly cut off. Invariant by construction; cheap to compile.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models.mlip_network import MLIPNetwork, default_float_dtype
from mlip_eqx.utils.config import Config, PositiveInt


@dataclasses.dataclass(frozen=True)
class PairNetworkConfig(Config):
    num_basis: PositiveInt = 6
    hidden: PositiveInt = 16


class PairNetwork(MLIPNetwork):
    Config = PairNetworkConfig

    config: PairNetworkConfig = eqx.field(static=True)
    dataset_info: DatasetInfo = eqx.field(static=True)
    species_embedding: Float[Array, "num_species hidden"]
    first_layer: Float[Array, "num_basis hidden"]
    second_layer: Float[Array, " hidden"]

    def __init__(self, config, dataset_info, *, key=None):
        self.config = config
        self.dataset_info = dataset_info
        key = jax.random.key(0) if key is None else key
        keys = jax.random.split(key, 3)
        dtype = default_float_dtype()
        num_species = len(dataset_info.allowed_atomic_numbers)
        self.species_embedding = jax.random.normal(
            keys[0], (num_species, config.hidden), dtype
        )
        self.first_layer = jax.random.normal(
            keys[1], (config.num_basis, config.hidden), dtype
        ) / jnp.sqrt(config.num_basis)
        self.second_layer = jax.random.normal(keys[2], (config.hidden,), dtype) * 0.1

    def __call__(
        self,
        edge_vectors: Float[Array, "n_edge 3"],
        node_species: Int[Array, " n_node"],
        senders: Int[Array, " n_edge"],
        receivers: Int[Array, " n_edge"],
        paired_edges: bool = False,
    ) -> Float[Array, " n_node"]:
        cutoff = self.dataset_info.cutoff_distance_angstrom
        squared = jnp.sum(edge_vectors**2, axis=-1)
        is_zero = squared == 0
        lengths = jnp.sqrt(jnp.where(is_zero, 1.0, squared))
        centres = jnp.linspace(0.5, cutoff, self.config.num_basis)
        basis = jnp.exp(-2.0 * (lengths[:, None] - centres) ** 2)
        envelope = jnp.where(lengths < cutoff, (1 - (lengths / cutoff) ** 2) ** 2, 0.0)
        hidden = jax.nn.silu(
            basis @ self.first_layer
            + self.species_embedding[node_species[senders]]
            * self.species_embedding[node_species[receivers]]
        )
        pair = jnp.where(is_zero, 0.0, (hidden @ self.second_layer) * envelope)
        node_energies = jax.ops.segment_sum(
            pair, receivers, num_segments=node_species.shape[0]
        )
        e0 = jnp.asarray(
            list(self.dataset_info.atomic_energies_map.values()), node_energies.dtype
        )
        return node_energies + e0[node_species]
