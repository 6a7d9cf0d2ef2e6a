"""NequIP: E(3)-equivariant convolutions with gates (Batzner et al., 2022)."""

from mlip_eqx.models.nequip.config import NequipConfig
from mlip_eqx.models.nequip.network import Nequip

__all__ = ["Nequip", "NequipConfig"]
