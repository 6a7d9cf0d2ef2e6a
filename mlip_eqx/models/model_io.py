"""A ForceField as a small zip archive for inference (no training state), and back.

The archive holds two kinds of entries::

    mlip_eqx_model.json    format version, the version of mlip_eqx that wrote
                           it ("version", as the original library's
                           hyperparams.json has), network class name, network
                           config, DatasetInfo, predict_stress, the float dtype
                           the model computes in ("dtype": "float32" or
                           "float64"), and the key path, shape and dtype of
                           every array
    arrays/00000.npy ...   the trainable arrays of the force field, in that order

Loading rebuilds the network from its config and DatasetInfo and puts the saved
arrays in, after checking that each one fits; archives without "version" or
"dtype" (older ones) load the same (their dtype is that of their float arrays).

A float64 model computes in float64 only with ``jax_enable_x64`` on; the jobs that
load a zip (:func:`~mlip_eqx.workflows.evaluate.evaluate`,
:func:`~mlip_eqx.workflows.simulate.simulate`) turn it on for a float64 zip with
:func:`use_saved_dtype`, which reads only the manifest.
"""

import contextlib
import importlib.metadata
import io
import json
import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models.convert.mlip_zip import force_field_from_mlip_zip, is_mlip_zip
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.mlip_network import (
    FloatDtypeName,
    MLIPNetwork,
    default_float_dtype,
    use_float_dtype,
)
from mlip_eqx.models.registry import UnknownNetworkError, get_network_class
from mlip_eqx.utils.config import config_from_dict, config_to_dict
from mlip_eqx.utils.files import atomic_write
from mlip_eqx.utils.trees import flatten_with_key_paths

MODEL_FORMAT_VERSION = 1
MANIFEST_NAME = "mlip_eqx_model.json"
ARRAYS_DIR = "arrays"


def _array_name(index: int) -> str:
    return f"{ARRAYS_DIR}/{index:05d}.npy"


def save_model_to_zip(save_path: str | os.PathLike, force_field: ForceField) -> None:
    """Saves a force field (network class, config, DatasetInfo, arrays) as a zip.

    The file is written to a temporary file next to it and then renamed, so an
    existing file at ``save_path`` is replaced whole or not at all.

    Args:
        save_path: The archive to write (conventionally ending in ".zip").
        force_field: The force field; its network's config must be a
            :class:`~mlip_eqx.utils.config.Config` of JSON-representable values.
    """
    path = Path(save_path)
    params, _ = force_field.partition()
    keyed = [(key, np.asarray(leaf)) for key, leaf in flatten_with_key_paths(params)]
    dtype = _float_dtype_of([str(array.dtype) for _, array in keyed])
    manifest = {
        "format_version": MODEL_FORMAT_VERSION,
        "version": importlib.metadata.version("mlip_eqx"),
        "network": type(force_field.network).__name__,
        "config": config_to_dict(force_field.config),
        "dataset_info": force_field.dataset_info.to_dict(),
        "predict_stress": force_field.predict_stress,
        "dtype": dtype,
        "arrays": [
            {"path": key, "shape": list(array.shape), "dtype": str(array.dtype)}
            for key, array in keyed
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as file, zipfile.ZipFile(file, "w") as archive:
        archive.writestr(
            MANIFEST_NAME,
            json.dumps(manifest, indent=2),
            compress_type=zipfile.ZIP_DEFLATED,
        )
        for index, (_, array) in enumerate(keyed):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            archive.writestr(_array_name(index), buffer.getvalue())


def saved_dtype(load_path: str | os.PathLike) -> FloatDtypeName:
    """The float dtype a model zip was saved in, from its manifest alone (no JAX
    work: call it before deciding on ``jax_enable_x64``).

    Raises:
        FileNotFoundError: If there is no file at ``load_path``.
        ValueError: If the file is not a model archive or is damaged.
    """
    path = Path(load_path)
    with _archive_errors(path), zipfile.ZipFile(path) as archive:
        return _manifest_dtype(_read_manifest(archive, path))


def use_saved_dtype(load_path: str | os.PathLike) -> None:
    """Turns ``jax_enable_x64`` on for the whole process (see
    :func:`~mlip_eqx.models.mlip_network.use_float_dtype`) if the model zip was
    saved in float64; a float32 zip changes nothing.

    Raises:
        FileNotFoundError: If there is no file at ``load_path``.
        ValueError: If the file is not a model archive or is damaged.
    """
    if saved_dtype(load_path) == "float64":
        use_float_dtype("float64")


def load_model_from_zip(
    model_type: type[MLIPNetwork] | None,
    load_path: str | os.PathLike,
    dtype: FloatDtypeName | None = None,
) -> ForceField:
    """Loads a force field saved by :func:`save_model_to_zip`.

    Args:
        model_type: The network class of the saved model (e.g. ``Mace``), or None
            to find the class saved in the archive in the network registry (see
            :func:`~mlip_eqx.models.registry.register_network`).
        load_path: The archive.
        dtype: The dtype to predict in: "float32" (a float64 model is cast
            down; needs ``jax_enable_x64`` off), "float64" (needs it on), or
            None: the saved dtype (a float32 model is widened under
            ``jax_enable_x64``, where the networks compute in float64).

    Returns:
        The force field, with the saved parameters and ``predict_stress``.

    A zip written by the original mlip library (0.2.x) is recognised by its
    entries and converted (see :mod:`mlip_eqx.models.convert.mlip_zip`), in
    this session's dtype.

    Raises:
        FileNotFoundError: If there is no file at ``load_path``.
        MlipZipError: If an mlip zip does not convert (version, architecture).
        ValueError: If the file is not a model archive or is damaged, was written
            by a newer version, holds another network than ``model_type``, or an
            array does not fit the rebuilt network; or if this session cannot
            compute in the dtype asked for (or, for None, the saved float64).
    """
    path = Path(load_path)
    if is_mlip_zip(path):  # the original mlip library's zip: converted
        return force_field_from_mlip_zip(path)
    manifest, arrays = _read_archive(path)
    _check_session_dtype(_manifest_dtype(manifest), dtype, path)
    network_class = _network_class(manifest, model_type, path)
    try:
        config = config_from_dict(network_class.Config, manifest["config"])
        dataset_info = DatasetInfo.from_dict(manifest["dataset_info"])
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: invalid model description: {error}") from error
    force_field = ForceField(
        network_class(config, dataset_info),
        predict_stress=bool(manifest["predict_stress"]),
    )
    template, static = force_field.partition()
    keyed = flatten_with_key_paths(template)
    records = manifest["arrays"]
    expected_paths = [key for key, _ in keyed]
    saved_paths = [record["path"] for record in records]
    if saved_paths != expected_paths:
        missing = [p for p in expected_paths if p not in saved_paths]
        extra = [p for p in saved_paths if p not in expected_paths]
        raise ValueError(
            f"{path}: the saved arrays do not fit a {network_class.__name__} of the "
            f"saved config: missing {missing[:3]}, unexpected {extra[:3]}."
        )
    leaves = [
        _fitted_array(array, leaf, record["path"], path)
        for array, (_, leaf), record in zip(arrays, keyed, records)
    ]
    params = jax.tree.unflatten(jax.tree.structure(template), leaves)
    return eqx.combine(params, static)


def _check_session_dtype(
    saved: FloatDtypeName, asked: FloatDtypeName | None, path: Path
) -> None:
    """Refuses a dtype this session cannot compute in (the networks compute in
    the default float dtype, float64 exactly when ``jax_enable_x64`` is on)."""
    session = default_float_dtype().name
    wanted = asked or saved
    if wanted == "float64" and session != "float64":
        what = "the model was saved in" if asked is None else "you asked for"
        raise ValueError(
            f"{path}: {what} float64, and this session computes in float32: turn "
            'float64 on first (jax.config.update("jax_enable_x64", True), before '
            'building any array), or pass dtype="float32" to predict in float32 '
            "(the parameters cast down)."
        )
    if asked == "float32" and session != "float32":
        raise ValueError(
            f"{path}: float32 was asked for, but jax_enable_x64 is on in this "
            "session, so the networks compute in float64: load it with dtype=None "
            "(float64), or turn jax_enable_x64 off before building anything."
        )


def _float_dtype_of(array_dtypes: list[str]) -> FloatDtypeName:
    """float64 if any float array is float64, otherwise float32."""
    return "float64" if "float64" in array_dtypes else "float32"


def _manifest_dtype(manifest: dict) -> FloatDtypeName:
    """The manifest's "dtype", or (older archives) that of its float arrays."""
    dtype = manifest.get("dtype")
    if dtype is None:
        return _float_dtype_of([record["dtype"] for record in manifest["arrays"]])
    return dtype


@contextlib.contextmanager
def _archive_errors(path: Path) -> Iterator[None]:
    """A damaged archive as a ValueError naming it (a missing file stays a
    FileNotFoundError)."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, OSError) as error:
        if isinstance(error, FileNotFoundError | IsADirectoryError):
            raise
        raise ValueError(f"{path} is damaged: {error}") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: {MANIFEST_NAME} is damaged: {error}") from error


def _read_manifest(archive: zipfile.ZipFile, path: Path) -> dict:
    """The checked manifest of an open archive."""
    if MANIFEST_NAME not in archive.namelist():
        raise ValueError(
            f"{path} is not a mlip_eqx model archive (it has no {MANIFEST_NAME})."
        )
    manifest = json.loads(archive.read(MANIFEST_NAME))
    _check_manifest(manifest, path)
    return manifest


def _read_archive(path: Path) -> tuple[dict, list[np.ndarray]]:
    """The manifest and arrays of an archive, checked against each other."""
    with _archive_errors(path), zipfile.ZipFile(path) as archive:
        manifest = _read_manifest(archive, path)
        arrays = []
        for index, record in enumerate(manifest["arrays"]):
            with archive.open(_array_name(index)) as file:
                array = np.lib.format.read_array(file, allow_pickle=False)
            if (
                list(array.shape) != record["shape"]
                or str(array.dtype) != record["dtype"]
            ):
                raise ValueError(
                    f"{path}: array {record['path']} is {array.dtype}"
                    f"{list(array.shape)}, its description says "
                    f"{record['dtype']}{record['shape']}."
                )
            arrays.append(array)
    return manifest, arrays


def _check_manifest(manifest, path: Path) -> None:
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: {MANIFEST_NAME} is not a JSON object.")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise ValueError(f"{path}: {MANIFEST_NAME} has no format version.")
    if version < 1:
        raise ValueError(
            f"{path}: {MANIFEST_NAME} has format version {version}; versions "
            f"start at 1 (this mlip_eqx writes {MODEL_FORMAT_VERSION})."
        )
    if version > MODEL_FORMAT_VERSION:
        raise ValueError(
            f"{path} has model format version {version}, newer than this version "
            f"of mlip_eqx reads ({MODEL_FORMAT_VERSION}); update mlip_eqx."
        )
    required = ("network", "config", "dataset_info", "predict_stress", "arrays")
    missing = [key for key in required if key not in manifest]
    if missing:
        raise ValueError(f"{path}: {MANIFEST_NAME} lacks {missing}.")


def _network_class(
    manifest: dict, model_type: type[MLIPNetwork] | None, path: Path
) -> type[MLIPNetwork]:
    name = manifest["network"]
    if model_type is not None:
        if model_type.__name__ != name:
            raise ValueError(
                f"{path} holds a {name} model, not a {model_type.__name__}."
            )
        return model_type
    try:
        return get_network_class(name)
    except UnknownNetworkError as error:
        raise ValueError(
            f"{path} holds a {name} model: {error} Pass its class as model_type."
        ) from None


def _fitted_array(
    array: np.ndarray, leaf: jax.Array, key_path: str, path: Path
) -> jax.Array:
    """The saved array in the dtype of the rebuilt network's array (widened or
    cast down as :func:`_check_session_dtype` allowed)."""
    if array.shape != leaf.shape:
        raise ValueError(
            f"{path}: array {key_path} has shape {array.shape}, the network built "
            f"from the saved config expects {leaf.shape}."
        )
    return jnp.asarray(array, dtype=leaf.dtype)
