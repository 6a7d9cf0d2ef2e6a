"""VisnetConfig: defaults of mlip 0.2.5, and every validation error."""

import pytest

from mlip_eqx.models import Visnet, VisnetConfig
from mlip_eqx.utils.config import ConfigError, config_from_dict, config_to_dict


def test_defaults_are_those_of_mlip():
    config = Visnet.Config()
    assert Visnet.Config is VisnetConfig
    assert config.num_layers == 4
    assert config.num_channels == 256
    assert config.l_max == 2
    assert config.num_heads == 8
    assert config.num_rbf == 32
    assert config.trainable_rbf is False
    assert config.activation == "silu"
    assert config.attn_activation == "silu"
    assert config.vecnorm_type == "none"
    assert config.num_readout_heads == 1
    assert config.atomic_energies is None
    assert config.head_dim == 32


def test_configs_are_frozen_hashable_and_round_trip_through_json():
    config = Visnet.Config(atomic_energies={1: -13, 8: -2041.5}, vecnorm_type="rms")
    assert config.atomic_energies == {1: -13.0, 8: -2041.5}
    same = Visnet.Config(atomic_energies={8: -2041.5, 1: -13.0}, vecnorm_type="rms")
    assert same == config and hash(same) == hash(config)
    with pytest.raises(AttributeError):
        config.num_layers = 3
    assert config_from_dict(VisnetConfig, config_to_dict(config)) == config
    for choice in (None, "average", "zero"):
        Visnet.Config(atomic_energies=choice)
    Visnet.Config(num_channels=2, num_heads=1, l_max=3, vecnorm_type="max_min")


@pytest.mark.parametrize(
    "field, value",
    [
        ("num_layers", 0),
        ("num_channels", 0),
        ("num_channels", 100),  # not a multiple of num_heads=8
        ("num_channels", 16.0),
        ("l_max", 0),
        ("num_heads", 0),
        ("num_rbf", 0),
        ("trainable_rbf", "yes"),
        ("activation", "gelu"),
        ("attn_activation", "softmax"),
        ("vecnorm_type", "layer"),
        ("num_readout_heads", 0),
        ("atomic_energies", "mean"),
        ("atomic_energies", {0: -1.0}),
        ("atomic_energies", {29: "low"}),
    ],
)
def test_bad_value_raises_an_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"VisnetConfig.{field}"):
        Visnet.Config(**{field: value})


def test_channels_must_split_into_heads_and_halve():
    with pytest.raises(ConfigError, match="not divisible by num_heads=3"):
        Visnet.Config(num_channels=16, num_heads=3)
    with pytest.raises(ConfigError, match="VisnetConfig.num_channels.*at least 2"):
        Visnet.Config(num_channels=1, num_heads=1)
