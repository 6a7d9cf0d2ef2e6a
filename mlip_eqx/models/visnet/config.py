"""Hyperparameters of ViSNet; defaults are those of mlip 0.2.5."""

import dataclasses
from typing import Literal

from mlip_eqx.models.activations import ActivationName
from mlip_eqx.models.atomic_energies import (
    AtomicEnergiesChoice,
    check_atomic_numbers,
    with_float_energies,
)
from mlip_eqx.utils.config import Config, ConfigError, PositiveInt, config_hash

VectorNormType = Literal["none", "rms", "max_min"]


@dataclasses.dataclass(frozen=True)
class VisnetConfig(Config):
    """Hyperparameters of :class:`~mlip_eqx.models.visnet.network.Visnet`.

    The network is mlip 0.2.5's ViSNet with ``use_legacy_visnet=False`` (the
    polynomial envelope on both messages, scaled attention logits), the
    exp-normal radial basis and no charges. mlip's options for other radial
    bases, Coulomb terms, partial and total charges, rematerialisation and
    deterministic scatters are not offered. ViSNet sums the messages without a
    normalisation, so there is no ``avg_num_neighbors``.

    Attributes:
        num_layers: Number of ViSNet layers (the last one does not update the
            edge features).
        num_channels: Channels of the scalar, vector and edge features; a multiple
            of ``num_heads`` and at least 2 (the readout halves it).
        l_max: Highest degree of the spherical harmonics of the edge directions
            (the vector features hold degrees 1..l_max). mlip accepts 1 and 2 only;
            higher degrees work the same way here.
        num_heads: Number of attention heads.
        num_rbf: Number of exp-normal radial basis functions.
        trainable_rbf: Whether the centres and widths of the radial basis are
            trained.
        activation: Activation of the layers and of the readout.
        attn_activation: Activation of the attention weights.
        vecnorm_type: Normalisation of the vector features before each layer and
            the readout: "none", "rms" or "max_min" (each degree separately).
        num_readout_heads: Number of readout heads: a structure's data set
            (``dataset_idx``) selects its head, as in the original library's
            0.2; 1: one head for every data set.
        atomic_energies: E0 per element: None or "average" for the dataset's,
            "zero" for none, or a {Z: eV} map covering the dataset's elements.
    """

    num_layers: PositiveInt = 4
    num_channels: PositiveInt = 256
    l_max: PositiveInt = 2
    num_heads: PositiveInt = 8
    num_rbf: PositiveInt = 32
    trainable_rbf: bool = False
    activation: ActivationName = "silu"
    attn_activation: ActivationName = "silu"
    vecnorm_type: VectorNormType = "none"
    num_readout_heads: PositiveInt = 1
    atomic_energies: AtomicEnergiesChoice = dataclasses.field(
        default=None, metadata={"convert": with_float_energies}
    )

    def __check_init__(self) -> None:
        name = type(self).__name__
        check_atomic_numbers(self.atomic_energies, f"{name}.atomic_energies")
        if self.num_channels % self.num_heads != 0:
            raise ConfigError(
                f"{name}.num_channels: {self.num_channels} is not divisible by "
                f"num_heads={self.num_heads} (each head gets num_channels / "
                "num_heads channels)."
            )
        if self.num_channels < 2:
            raise ConfigError(
                f"{name}.num_channels: invalid value {self.num_channels} (expected "
                "at least 2: the readout halves the channels)."
            )

    def __hash__(self) -> int:
        return config_hash(self)

    @property
    def head_dim(self) -> int:
        """Channels per attention head."""
        return self.num_channels // self.num_heads
