"""ViSNet: vector-scalar interactive message passing (Wang et al., 2024)."""

from mlip_eqx.models.visnet.config import VisnetConfig
from mlip_eqx.models.visnet.network import Visnet

__all__ = ["Visnet", "VisnetConfig"]
