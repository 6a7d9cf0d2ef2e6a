"""Model zips of the original mlip library (0.2.x) into our force field, without
mlip installed.

mlip 0.2's ``save_model_to_zip`` writes two entries: ``hyperparams.json``
(``{"dataset_info": ..., "config": ..., "available_properties": ...,
"version": "0.2.5"}``) and ``params.npz``, the force field's flax parameters,
one array per path joined by "#" (``"params#mlip_network#embedding_block#..."``).
The zip does not name the architecture: it is recognised by the network's
top-level modules. Converted: mlip 0.2's ViSNet (``models.Visnet``, mapped by
:mod:`mlip_eqx.models.convert.visnet`), NequIP (``models.Nequip``, mapped by
:mod:`mlip_eqx.models.convert.nequip_v2`) and MACE (``models.Mace``, mapped by
:mod:`mlip_eqx.models.convert.mace_v2`), and the NequIP and MACE of mlip 0.1
(``models_v1``: the published NequIP and MACE models were trained with them;
mlip 0.2.5 still loads and saves them; mapped by
:mod:`mlip_eqx.models.convert.nequip` and :mod:`mlip_eqx.models.convert.mace`).
"""

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models.convert.mace import mace_from_mlip_params
from mlip_eqx.models.convert.mace_v2 import mace_from_mlip_v2_params, mace_v2_config
from mlip_eqx.models.convert.nequip import nequip_from_mlip_params
from mlip_eqx.models.convert.nequip_v2 import (
    nequip_from_mlip_v2_params,
    nequip_v2_config,
)
from mlip_eqx.models.convert.visnet import visnet_from_mlip_params
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.mace import Mace, MaceConfig
from mlip_eqx.models.nequip import Nequip, NequipConfig
from mlip_eqx.models.visnet import Visnet, VisnetConfig

HYPERPARAMS_ENTRY = "hyperparams.json"
PARAMS_ENTRY = "params.npz"
PARAMETER_DELIMITER = "#"
SUPPORTED_VERSION_PREFIX = "0.2."
# mlip 0.1's networks (``models_v1``), which mlip 0.2 still loads: zips of mlip
# 0.1 itself, which may lack a version, and of mlip 0.2.
V1_VERSION_PREFIXES = ("0.1.", "0.2.")

# A top-level module of mlip's network -> the architecture it belongs to.
_ARCHITECTURES = {
    "visnet_layers_0": "ViSNet",
    "layers_0": "MACE",
    "NequipLayer_0": "NequIP",
    "NequipBlock_0": "NequIP (mlip 0.1)",
    "MaceBlock_0": "MACE (mlip 0.1)",
}
# mlip 0.2's e3j-based networks: (our network, its config of mlip's, the map of
# mlip's parameters); their config functions raise ValueError naming an option.
_V2_NETWORKS = {
    "NequIP": (Nequip, nequip_v2_config, nequip_from_mlip_v2_params),
    "MACE": (Mace, mace_v2_config, mace_from_mlip_v2_params),
}
_V1_ARCHITECTURES = ("NequIP (mlip 0.1)", "MACE (mlip 0.1)")
# mlip 0.1's NequIP and MACE options without effect on the function computed.
_V1_IGNORED = ("deterministic_scatter_ops",)
# mlip 0.1's MACE options that ours lacks, with the one value ours computes.
_V1_MACE_FIXED = {
    "gate_nodes": False,
    "species_embedding_dim": None,
    # mlip 0.1 sums the heads' outputs; ours selects one per structure.
    "num_readout_heads": 1,
}

# mlip's ViSNet options that ours lacks, with the one value ours computes.
_VISNET_FIXED = {
    "radial_basis": "expnorm",
    "predict_partial_charges": False,
    "use_coulomb_term": False,
    "use_total_charge_embedding": False,
    "use_legacy_visnet": False,
    "embed_activation": "silu",
}
_VISNET_IGNORED = ("num_species", "deterministic_scatter_ops", "use_remat")


class MlipZipError(ValueError):
    """An mlip model zip that does not convert; the message names the file and
    the reason (version, architecture or option)."""


def is_mlip_zip(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zip with mlip's two entries (``hyperparams.json``
    and ``params.npz``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    return {HYPERPARAMS_ENTRY, PARAMS_ENTRY} <= names


def read_mlip_zip(path: str | os.PathLike) -> tuple[dict, dict]:
    """The hyperparameters and the nested parameter dict of an mlip model zip.

    Raises:
        MlipZipError: If an entry is missing or unreadable.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            hyperparams = json.loads(archive.read(HYPERPARAMS_ENTRY))
            with archive.open(PARAMS_ENTRY) as file, np.load(file) as arrays:
                flat = {name: np.asarray(arrays[name]) for name in arrays.files}
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
        raise MlipZipError(
            f"{path}: not a readable mlip model zip ({error})."
        ) from None
    params: dict = {}
    for name, array in flat.items():
        *modules, leaf = name.split(PARAMETER_DELIMITER)
        node = params
        for module in modules:
            node = node.setdefault(module, {})
        node[leaf] = array
    return hyperparams, params


def force_field_from_mlip_zip(
    path: str | os.PathLike, predict_stress: bool = True
) -> ForceField:
    """Our force field of a model zip written by mlip 0.2.x: the same network
    (the ViSNet map is checked against mlip 0.2.5 to 1e-10 eV in float64, the
    NequIP and MACE maps to 1e-8 relative in energy, forces and stress).

    The arrays get the dtype of this session (float64 with ``jax_enable_x64``).

    Args:
        path: The zip (mlip's ``save_model_to_zip``).
        predict_stress: Whether the force field computes stress.

    Raises:
        FileNotFoundError: If there is no such file.
        MlipZipError: If the zip is from another mlip version, of an architecture
            or with an option that does not convert (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model zip.")
    hyperparams, params = read_mlip_zip(path)
    network_params = params.get("params", {}).get("mlip_network")
    if not isinstance(network_params, Mapping):
        raise MlipZipError(
            f"{path}: params.npz has no params#mlip_network#... arrays (not an "
            "mlip force field)."
        )
    architecture = _architecture(path, network_params)
    _check_version(path, hyperparams.get("version"), architecture)
    dataset_info = _dataset_info(path, hyperparams["dataset_info"])
    if architecture in _V2_NETWORKS:
        network_class, make_config, map_weights = _V2_NETWORKS[architecture]
        try:
            network = network_class(make_config(hyperparams["config"]), dataset_info)
        except ValueError as error:
            raise MlipZipError(f"{path}: {error}.") from None
    elif architecture == "ViSNet":
        network = Visnet(_visnet_config(path, hyperparams["config"]), dataset_info)
        map_weights = visnet_from_mlip_params
    elif architecture == "MACE (mlip 0.1)":
        network = Mace(_v1_mace_config(path, hyperparams["config"]), dataset_info)
        map_weights = mace_from_mlip_params
    else:
        config = _nequip_config(path, hyperparams["config"], dataset_info)
        network = Nequip(config, dataset_info)
        map_weights = nequip_from_mlip_params
    try:
        network = map_weights(network, {"params": network_params})
    except ValueError as error:
        raise MlipZipError(f"{path}: {error}.") from None
    return ForceField(network, predict_stress=predict_stress)


def _check_version(path: Path, version: str | None, architecture: str) -> None:
    """mlip 0.2.x for mlip 0.2's networks; for mlip 0.1's, also 0.1.x or none."""
    if architecture in _V1_ARCHITECTURES:
        if version is None or str(version).startswith(V1_VERSION_PREFIXES):
            return
        supported = "0.1.x or 0.2.x"
    elif str(version).startswith(SUPPORTED_VERSION_PREFIX):
        return
    else:
        supported = f"{SUPPORTED_VERSION_PREFIX}x"
    raise MlipZipError(
        f"{path}: written by mlip {version}; only {architecture} zips of mlip "
        f"{supported} convert (load it with that mlip and save it again with "
        "mlip 0.2)."
    )


def _architecture(path: Path, network_params: Mapping) -> str:
    """The architecture of mlip's network, from its top-level modules."""
    found = {_ARCHITECTURES[name] for name in network_params if name in _ARCHITECTURES}
    if len(found) != 1:
        raise MlipZipError(
            f"{path}: an mlip network of unknown architecture (top-level modules "
            f"{sorted(network_params)})."
        )
    return found.pop()


def _dataset_info(path: Path, values: Mapping[str, Any]) -> DatasetInfo:
    """Our DatasetInfo of mlip's (0.2 names; 0.1's cutoff name too)."""
    cutoff = values.get("graph_cutoff_angstrom", values.get("cutoff_distance_angstrom"))
    if cutoff is None:
        raise MlipZipError(f"{path}: dataset_info has no graph_cutoff_angstrom.")
    if values.get("long_range_cutoff_angstrom") is not None:
        raise MlipZipError(
            f"{path}: long-range (Coulomb) models are not supported "
            "(dataset_info.long_range_cutoff_angstrom is set)."
        )
    energies = values["atomic_energies_map"]
    maps = energies if isinstance(energies, list) else [energies]
    maps = [{int(z): float(e0) for z, e0 in energy_map.items()} for energy_map in maps]
    name = values.get("dataset_name")
    return DatasetInfo(
        atomic_energies_map=maps if isinstance(energies, list) else maps[0],
        cutoff_distance_angstrom=float(cutoff),
        avg_num_neighbors=float(values.get("avg_num_neighbors", 1.0)),
        avg_r_min_angstrom=values.get("avg_r_min_angstrom"),
        scaling_mean=float(values.get("scaling_mean", 0.0)),
        scaling_stdev=float(values.get("scaling_stdev", 1.0)),
        dataset_name=tuple(name) if isinstance(name, list) else name,
        atomic_energies_source=f"mlip model zip {path.name}",
    )


def _visnet_config(path: Path, values: Mapping[str, Any]) -> VisnetConfig:
    """Our ViSNet config of mlip's, refusing the options ours lacks."""
    values = _our_options(path, "ViSNet", values, _VISNET_FIXED, _VISNET_IGNORED)
    if not values.pop("add_atomic_energies", True):
        values["atomic_energies"] = "zero"
    return _config(path, "ViSNet", VisnetConfig, values)


def _nequip_config(
    path: Path, values: Mapping[str, Any], dataset_info: DatasetInfo
) -> NequipConfig:
    """Our NequIP config of mlip 0.1's (the same fields), refusing a species
    count other than the zip's number of elements."""
    values = _our_options(path, "NequIP", values, {}, _V1_IGNORED)
    num_species = values.pop("num_species", None)
    elements = len(dataset_info.allowed_atomic_numbers)
    if num_species is not None and num_species != elements:
        raise MlipZipError(
            f"{path}: num_species={num_species} differs from the {elements} "
            "elements of its dataset_info (not supported)."
        )
    return _config(path, "NequIP", NequipConfig, values)


def _v1_mace_config(path: Path, values: Mapping[str, Any]) -> MaceConfig:
    """Our MACE config of mlip 0.1's (the same fields), refusing the options
    ours lacks."""
    values = _our_options(path, "MACE", values, _V1_MACE_FIXED, _V1_IGNORED)
    if "readout_irreps" in values:
        values["readout_irreps"] = tuple(values["readout_irreps"])
    return _config(path, "MACE", MaceConfig, values)


def _our_options(
    path: Path,
    architecture: str,
    values: Mapping[str, Any],
    fixed: Mapping[str, Any],
    ignored: tuple[str, ...],
) -> dict[str, Any]:
    """mlip's config options without those ours lacks: each of ``fixed`` must
    have its one supported value (else an error naming it), ``ignored`` ones
    (no effect on the function computed) are dropped."""
    values = dict(values)
    for option, supported in fixed.items():
        value = values.pop(option, supported)
        if value != supported:
            raise MlipZipError(
                f"{path}: the {architecture} option {option}={value!r} is not "
                f"supported (only {supported!r})."
            )
    for option in ignored:
        values.pop(option, None)
    return values


def _config(path: Path, architecture: str, config_class: type, values: dict):
    """``config_class(**values)``, naming the options it does not know."""
    known = {field for field in config_class.__dataclass_fields__}
    unknown = sorted(set(values) - known)
    if unknown:
        raise MlipZipError(
            f"{path}: {architecture} config options {unknown} are not known."
        )
    return config_class(**values)
