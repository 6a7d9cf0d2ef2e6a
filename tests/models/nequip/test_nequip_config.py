"""NequipConfig: defaults of the original library, and every validation error."""

import pytest

from mlip_eqx.models import Nequip, NequipConfig
from mlip_eqx.utils.config import ConfigError, config_from_dict, config_to_dict


def test_defaults_are_those_of_the_original_library():
    config = Nequip.Config()
    assert Nequip.Config is NequipConfig
    assert config.num_layers == 2
    assert config.node_irreps == "128x0e + 128x0o + 64x1o + 64x1e + 4x2e + 4x2o"
    assert config.l_max == 3
    assert config.num_bessel == 8
    assert config.radial_net_nonlinearity == "swish"
    assert config.radial_net_n_hidden == 64
    assert config.radial_net_n_layers == 2
    assert config.radial_envelope == "polynomial_envelope"
    assert config.scalar_mlp_std == 4.0
    assert config.atomic_energies is None
    assert config.avg_num_neighbors is None
    # The original library's 0.1 architecture (0.2's by options).
    assert config.label_zero_irreps and config.self_connection_fan_in_species
    assert config.use_residual_connection
    assert (config.gate_even_activation, config.gate_odd_activation) == (
        "swish",
        "tanh",
    )


def test_configs_are_frozen_hashable_and_round_trip_through_json():
    config = Nequip.Config(atomic_energies={1: -13, 8: -2041.5}, scalar_mlp_std=2)
    assert config.atomic_energies == {1: -13.0, 8: -2041.5}
    assert config.scalar_mlp_std == 2.0
    same = Nequip.Config(atomic_energies={8: -2041.5, 1: -13}, scalar_mlp_std=2.0)
    assert same == config and hash(same) == hash(config)
    with pytest.raises(AttributeError):
        config.num_layers = 3
    assert config_from_dict(NequipConfig, config_to_dict(config)) == config
    for choice in (None, "average", "zero"):
        Nequip.Config(atomic_energies=choice)
    Nequip.Config(radial_envelope="soft_envelope", l_max=0, node_irreps="2x0e")


@pytest.mark.parametrize(
    "field, value",
    [
        ("num_layers", 0),
        ("node_irreps", "sixteen"),
        ("node_irreps", "4x0e + 4x0e"),
        ("node_irreps", "4x0e + 0x1o"),
        ("node_irreps", "1x0e + 4x1o"),
        ("node_irreps", "4x0o + 4x1o"),
        ("node_irreps", 16),
        ("l_max", -1),
        ("num_bessel", 0),
        ("radial_net_nonlinearity", "gelu"),
        ("radial_net_n_hidden", 0),
        ("radial_net_n_layers", 0),
        ("radial_envelope", "polynomial"),
        ("scalar_mlp_std", 0.0),
        ("atomic_energies", "mean"),
        ("atomic_energies", {0: -1.0}),
        ("atomic_energies", {29: "low"}),
        ("avg_num_neighbors", -1.0),
        ("label_zero_irreps", "no"),
        ("use_residual_connection", 1),
        ("self_connection_fan_in_species", None),
        ("gate_even_activation", "gelu"),
        ("gate_odd_activation", "none"),
    ],
)
def test_bad_value_raises_an_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"NequipConfig.{field}"):
        Nequip.Config(**{field: value})
