"""What ``mlip-eqx convert`` runs: another library's model file into our model
zip."""

import dataclasses
import logging
from pathlib import Path
from typing import Literal

import jax

from mlip_eqx.models.convert.mace_torch import force_field_from_mace_torch
from mlip_eqx.models.convert.mlip_zip import force_field_from_mlip_zip
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.model_io import save_model_to_zip
from mlip_eqx.utils.config import Config

logger = logging.getLogger("mlip_eqx")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvertSettings(Config):
    """Settings of ``mlip-eqx convert``.

    Attributes:
        model: The model file to convert (mace-torch: a module saved with
            ``torch.save``, e.g. a MACE-MP-0 ``.model`` file; it is unpickled,
            so convert only files you trust; mlip: a model zip written by the
            original mlip library 0.2.x).
        output: The model zip to write.
        source: The library that wrote the model.
        overwrite: Replace an existing output file.
        dtype: The dtype of the saved arrays (as ``mlip-eqx train --dtype``);
            a float64 zip loads only with ``jax_enable_x64`` and predicts in
            float64 in ``mlip-eqx evaluate``/``simulate``.
        predict_stress: Whether the converted force field computes stress.
    """

    model: str
    output: str
    source: Literal["mace-torch", "mlip"] = "mace-torch"
    overwrite: bool = False
    dtype: Literal["float32", "float64"] = "float32"
    predict_stress: bool = True


def convert(settings: ConvertSettings) -> ForceField:
    """Converts ``settings.model`` and saves it as our zip at ``settings.output``.

    Returns:
        The converted force field.

    Raises:
        FileExistsError: If the output exists and ``overwrite`` is not set.
        FileNotFoundError: If the model file does not exist.
        MaceTorchConversionError: If the file is not a mace-torch model that
            converts (see :mod:`mlip_eqx.models.convert.mace_torch`).
        MlipZipError: If the file is not an mlip zip that converts (see
            :mod:`mlip_eqx.models.convert.mlip_zip`).
        ImportError: If torch or mace-torch is not installed.
    """
    output = Path(settings.output)
    if output.exists() and not settings.overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it.")
    with jax.enable_x64(settings.dtype == "float64"):
        read = (
            force_field_from_mace_torch
            if settings.source == "mace-torch"
            else force_field_from_mlip_zip
        )
        force_field = read(settings.model, predict_stress=settings.predict_stress)
        save_model_to_zip(output, force_field)
    info = force_field.dataset_info
    logger.info(
        "Converted %s (%s, %d elements, heads %s, cutoff %.2f Å) to %s.",
        settings.model,
        settings.source,
        len(info.allowed_atomic_numbers),
        list(info.dataset_names),
        info.cutoff_distance_angstrom,
        output,
    )
    return force_field
