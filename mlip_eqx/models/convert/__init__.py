"""Conversion of other libraries' models into mlip_eqx's.

From the original mlip library: its parameter trees (flax's nested dicts of
arrays) mapped into our networks of the same config, without mlip installed.
"""

from mlip_eqx.models.convert.mlip_tree import flatten_mlip_params
from mlip_eqx.models.convert.nequip import nequip_from_mlip_params
from mlip_eqx.models.convert.visnet import visnet_from_mlip_params

__all__ = [
    "flatten_mlip_params",
    "nequip_from_mlip_params",
    "visnet_from_mlip_params",
]
