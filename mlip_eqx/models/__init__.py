"""Models: the MLIPNetwork interface, MACE, NequIP, ViSNet, and the ForceField that
wraps them."""

from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.inference_context import InferenceContext
from mlip_eqx.models.mace import Mace, MaceConfig
from mlip_eqx.models.mlip_network import MLIPNetwork
from mlip_eqx.models.nequip import Nequip, NequipConfig
from mlip_eqx.models.params_loading import load_parameters_from_checkpoint
from mlip_eqx.models.prediction import Prediction
from mlip_eqx.models.registry import get_network_class, register_network
from mlip_eqx.models.visnet import Visnet, VisnetConfig

__all__ = [
    "ForceField",
    "InferenceContext",
    "MLIPNetwork",
    "Mace",
    "MaceConfig",
    "Nequip",
    "NequipConfig",
    "Prediction",
    "Visnet",
    "VisnetConfig",
    "get_network_class",
    "load_parameters_from_checkpoint",
    "register_network",
]
