"""Small networks and a DatasetInfo for model tests.

A network joins the shared suite (tests/models/test_networks.py: physics, padding,
batching, gradients, archive) by adding a configuration to ``NETWORK_CONFIGS``.
"""

import functools

import jax

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models import ForceField, Mace, Nequip, Visnet

ELEMENTS = (29, 47, 79)  # those of mlip_eqx.testing.structures.random_system
CUTOFF = 4.0  # Å

DATASET_INFO = DatasetInfo(
    atomic_energies_map={29: -3.5, 47: -2.75, 79: -3.25},
    cutoff_distance_angstrom=CUTOFF,
    avg_num_neighbors=12.0,
    avg_r_min_angstrom=2.2,
    scaling_mean=0.1,
    scaling_stdev=1.5,
)

# Small configurations that exercise every code path quickly; every test of
# tests/models/test_networks.py runs on each.
NETWORK_CONFIGS = {
    "mace": (Mace, Mace.Config(num_channels=8, l_max=2, correlation=3)),
    # With options of mace-torch's foundation models: density-normalised
    # interactions, a distance transform, the ZBL repulsion.
    "mace-pseudotensors-soft": (
        Mace,
        Mace.Config(
            num_channels=8,
            l_max=2,
            correlation=2,
            include_pseudotensors=True,
            radial_envelope="soft_envelope",
            activation="tanh",
            density_normalisation=True,
            distance_transform="soft",
            pair_repulsion=True,
        ),
    ),
    "mace-3-layers-symmetric-basis": (
        Mace,
        Mace.Config(
            num_channels=8,
            l_max=1,
            node_symmetry=1,
            num_layers=3,
            correlation=3,
            symmetric_tensor_product_basis=True,
            num_readout_heads=2,
            readout_irreps=("4x0e + 2x1o", "0e"),
            distance_transform="agnesi",
        ),
    ),
    "nequip": (
        Nequip,
        Nequip.Config(
            node_irreps="8x0e + 8x0o + 4x1o + 4x1e",
            l_max=2,
            num_bessel=6,
            radial_net_n_hidden=8,
        ),
    ),
    # Unsorted irreps of different multiplicities; the odd scalars first become
    # nonzero in the third layer.
    "nequip-3-layers-soft": (
        Nequip,
        Nequip.Config(
            num_layers=3,
            node_irreps="6x0e + 4x0o + 4x1e + 2x1o + 2x2e + 2x2o",
            l_max=2,
            num_bessel=4,
            radial_net_nonlinearity="tanh",
            radial_net_n_hidden=8,
            radial_net_n_layers=1,
            radial_envelope="soft_envelope",
        ),
    ),
    # Three layers: the first (zero vectors: no vector terms, no edge update),
    # a middle one (the edge update runs; per-pair edge features become per
    # edge) and the last (no edge update).
    "visnet": (
        Visnet,
        Visnet.Config(num_layers=3, num_channels=8, num_heads=2, num_rbf=6),
    ),
    # l_max 1 (the edge update's rejection term does not cancel), trained radial
    # basis, normalised vectors, a second readout head.
    "visnet-l1-rms": (
        Visnet,
        Visnet.Config(
            num_layers=3,
            num_channels=6,
            l_max=1,
            num_heads=3,
            num_rbf=4,
            trainable_rbf=True,
            vecnorm_type="rms",
            attn_activation="tanh",
            num_readout_heads=2,
        ),
    ),
}


# Fast to compile, for tests of plumbing rather than physics.
TINY_CONFIGS = {
    "mace-tiny": (
        Mace,
        Mace.Config(num_channels=4, l_max=1, correlation=2, num_layers=1),
    ),
}


@functools.cache
def _force_field(name: str, predict_stress: bool, x64: bool) -> ForceField:
    network_class, config = {**NETWORK_CONFIGS, **TINY_CONFIGS}[name]
    network = network_class(config, DATASET_INFO, key=jax.random.key(7))
    return ForceField(network, predict_stress=predict_stress)


def force_field(name: str, predict_stress: bool = True) -> ForceField:
    """A cached force field of a named network, in the dtype of the current x64
    setting (call it and use its result under the same setting)."""
    return _force_field(name, predict_stress, bool(jax.config.jax_enable_x64))


def num_parameters(module) -> int:
    """Number of array entries of a module (its parameter count)."""
    import equinox as eqx

    return sum(leaf.size for leaf in jax.tree.leaves(eqx.filter(module, eqx.is_array)))


def counting_dataset_info(elements) -> DatasetInfo:
    """A DatasetInfo of ``elements`` for parameter counts (E0 -1 eV each)."""
    return DatasetInfo(
        atomic_energies_map={z: -1.0 for z in elements},
        cutoff_distance_angstrom=5.0,
        avg_num_neighbors=12.0,
    )
