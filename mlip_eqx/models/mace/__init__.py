"""MACE: higher-order equivariant message passing (Batatia et al., 2022)."""

from mlip_eqx.models.mace.config import MaceConfig
from mlip_eqx.models.mace.network import Mace

__all__ = ["Mace", "MaceConfig"]
