"""MaceConfig: defaults of the original library, and every validation error."""

import pytest

from mlip_eqx.models import Mace, MaceConfig
from mlip_eqx.utils.config import ConfigError


def test_defaults_are_those_of_the_original_library():
    config = Mace.Config()
    assert Mace.Config is MaceConfig
    assert (config.num_layers, config.num_channels, config.l_max) == (2, 128, 3)
    assert config.node_symmetry is None and config.resolved_node_symmetry == 3
    assert config.correlation == 3
    assert config.readout_irreps == ("16x0e", "0e")
    assert config.num_readout_heads == 1
    assert config.include_pseudotensors is False
    assert config.num_bessel == 8
    assert config.activation == "silu"
    assert config.radial_envelope == "polynomial_envelope"
    assert config.symmetric_tensor_product_basis is False
    assert config.atomic_energies is None
    assert config.avg_num_neighbors is None and config.avg_r_min is None
    assert config.num_species is None


def test_configs_are_frozen_hashable_and_accept_every_documented_option():
    config = Mace.Config(atomic_energies={29: -3, 47: -2.5})
    assert config.atomic_energies == {29: -3.0, 47: -2.5}
    assert hash(config) == hash(Mace.Config(atomic_energies={47: -2.5, 29: -3.0}))
    with pytest.raises(AttributeError):
        config.num_layers = 3
    for activation in ("silu", "elu", "relu", "tanh", "sigmoid", "swish"):
        Mace.Config(activation=activation)
    for choice in (None, "average", "zero"):
        Mace.Config(atomic_energies=choice)
    Mace.Config(radial_envelope="soft_envelope", node_symmetry=0, correlation=4)
    assert Mace.Config(avg_num_neighbors=3).avg_num_neighbors == 3.0


@pytest.mark.parametrize(
    "field, value",
    [
        ("num_layers", 0),
        ("num_layers", 1.5),
        ("num_channels", 0),
        ("l_max", -1),
        ("node_symmetry", -1),
        ("node_symmetry", 4),  # > l_max = 3
        ("correlation", 0),
        ("correlation", 5),
        ("readout_irreps", ("16x0e",)),
        ("readout_irreps", ("16x0e", "0e", "0e")),
        ("readout_irreps", ["16x0e", "0e"]),
        ("readout_irreps", ("sixteen", "0e")),
        ("readout_irreps", ("16x0e", "1o")),
        ("num_readout_heads", 0),
        ("include_pseudotensors", "yes"),
        ("num_bessel", 0),
        ("activation", "gelu"),
        ("radial_envelope", "polynomial"),
        ("symmetric_tensor_product_basis", 1),
        ("atomic_energies", "mean"),
        ("atomic_energies", {0: -1.0}),
        ("atomic_energies", {29: "low"}),
        ("avg_num_neighbors", 0.0),
        ("avg_r_min", -1.0),
        ("num_species", 0),
    ],
)
def test_bad_value_raises_an_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"MaceConfig.{field}"):
        Mace.Config(**{field: value})
