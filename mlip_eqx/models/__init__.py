"""Models: the MLIPNetwork interface, MACE, and the ForceField that wraps them."""

from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.mace import Mace, MaceConfig
from mlip_eqx.models.mlip_network import MLIPNetwork
from mlip_eqx.models.prediction import Prediction

__all__ = ["ForceField", "MLIPNetwork", "Mace", "MaceConfig", "Prediction"]
