"""Conversion of other libraries' models into mlip_eqx's.

From the original mlip library: its parameter trees (flax's nested dicts of
arrays) mapped into our networks of the same config, and its 0.2 model zips
read into our force field, without mlip installed.
From mace-torch: its MACE and ScaleShiftMACE modules or model files into our
force field (needs torch and mace-torch, the ``convert`` extra, imported only
when converting).
"""

from mlip_eqx.models.convert.mace import mace_from_mlip_params
from mlip_eqx.models.convert.mace_torch import (
    MaceTorchConversionError,
    force_field_from_mace_torch,
    load_mace_torch_model,
)
from mlip_eqx.models.convert.mace_v2 import mace_from_mlip_v2_params
from mlip_eqx.models.convert.mlip_tree import flatten_mlip_params
from mlip_eqx.models.convert.mlip_zip import (
    MlipZipError,
    force_field_from_mlip_zip,
    is_mlip_zip,
)
from mlip_eqx.models.convert.nequip import nequip_from_mlip_params
from mlip_eqx.models.convert.nequip_v2 import nequip_from_mlip_v2_params
from mlip_eqx.models.convert.visnet import visnet_from_mlip_params

__all__ = [
    "mace_from_mlip_params",
    "mace_from_mlip_v2_params",
    "MaceTorchConversionError",
    "force_field_from_mace_torch",
    "load_mace_torch_model",
    "flatten_mlip_params",
    "MlipZipError",
    "force_field_from_mlip_zip",
    "is_mlip_zip",
    "nequip_from_mlip_params",
    "nequip_from_mlip_v2_params",
    "visnet_from_mlip_params",
]
