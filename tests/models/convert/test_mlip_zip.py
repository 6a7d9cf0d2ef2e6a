"""Model zips of the original mlip library (0.2.x) load as our force field without
mlip: recognised by their entries, converted (ViSNet; mlip 0.1's NequIP and
MACE; mlip 0.2's NequIP in ``test_mlip_nequip_zip.py``), written
as ours by ``mlip-eqx convert --from mlip``; another version, architecture or
option is named.

The zips are written here in mlip 0.2.5's format (``hyperparams.json`` and
``params.npz`` with "#"-joined flax paths) from mlip's parameter names of our
network (``visnet_layout``). That layout and the converted predictions were
checked once against zips written by mlip 0.2.5 itself: the same names and
shapes, and the same energies and forces to 4e-15 eV (float64). The NequIP
layout (``nequip_layout``) was checked the same way against a ``models_v1.Nequip``
zip written by mlip 0.2.5 (2026-12-07): energies equal, forces to 3e-16 eV/Å.
"""

import json
import zipfile

import equinox as eqx
import jax
import numpy as np
import pytest

from mlip_eqx.cli import main
from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models import Mace, Nequip, Visnet
from mlip_eqx.models.convert import (
    mace_from_mlip_params,
    nequip_from_mlip_params,
    visnet_from_mlip_params,
)
from mlip_eqx.models.convert.mlip_zip import MlipZipError, is_mlip_zip
from mlip_eqx.models.model_io import load_model_from_zip
from mlip_eqx.testing.physics import make_graph, predict_graph
from mlip_eqx.testing.structures import random_system
from tests.models.convert.test_mlip_weights import (
    mace_v1_layout,
    nequip_layout,
    nested,
    visnet_layout,
)

ELEMENTS = (1, 6, 8)
# mlip 0.2.5's ViSNet config and DatasetInfo as its zips hold them.
MLIP_CONFIG = {
    "add_atomic_energies": True,
    "num_layers": 2,
    "num_channels": 8,
    "l_max": 2,
    "num_heads": 2,
    "num_rbf": 6,
    "trainable_rbf": False,
    "activation": "silu",
    "attn_activation": "silu",
    "vecnorm_type": "none",
    "num_readout_heads": 1,
    "radial_basis": "expnorm",
    "num_species": None,
    "predict_partial_charges": False,
    "use_coulomb_term": False,
    "use_total_charge_embedding": False,
    "embed_activation": "silu",
    "deterministic_scatter_ops": False,
    "use_remat": False,
    "use_legacy_visnet": False,
}
MLIP_DATASET_INFO = {
    "dataset_name": None,
    "num_graphs": None,
    "atomic_energies_map": {"1": -1.5, "6": -3.25, "8": -2.0},
    "total_charge_set": None,
    "graph_cutoff_angstrom": 4.0,
    "long_range_cutoff_angstrom": None,
    "avg_num_neighbors": 6.0,
    "avg_r_min_angstrom": None,
    "scaling_mean": 0.3,
    "scaling_stdev": 1.7,
    "atomic_energies_removed": False,
}


def mlip_params(seed: int = 0) -> dict[str, np.ndarray]:
    """Random parameters of mlip's ViSNet of ``MLIP_CONFIG``, by "/"-path."""
    info = DatasetInfo(
        atomic_energies_map={z: 0.0 for z in ELEMENTS}, cutoff_distance_angstrom=4.0
    )
    config = {key: MLIP_CONFIG[key] for key in ("num_layers", "num_channels")}
    config |= {key: MLIP_CONFIG[key] for key in ("l_max", "num_heads", "num_rbf")}
    network = Visnet(Visnet.Config(**config), info, key=jax.random.key(0))
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in visnet_layout(network).items():
        radial = name.endswith(("means", "betas"))  # radial basis: positive
        values = rng.uniform(0.5, 2.0, shape) if radial else rng.normal(0, 0.3, shape)
        params[name] = values.astype(np.float32)
    return params


def write_mlip_zip(path, params, config=None, dataset_info=None, version="0.2.5"):
    """A zip as mlip 0.2.5's ``save_model_to_zip`` writes it."""
    hyperparams = {
        "dataset_info": dataset_info or MLIP_DATASET_INFO,
        "config": config or MLIP_CONFIG,
        "available_properties": {"energy": True, "forces": True, "stress": True},
        "version": version,
    }
    arrays = {
        "params#mlip_network#" + name.removeprefix("params/").replace("/", "#"): array
        for name, array in params.items()
    }
    npz = path.with_suffix(".npz")
    np.savez(npz, **arrays)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hyperparams.json", json.dumps(hyperparams))
        archive.write(npz, "params.npz")
    return path


def test_an_mlip_visnet_zip_loads_converted_and_converts_to_our_zip(tmp_path):
    params = mlip_params()
    mlip_zip = write_mlip_zip(tmp_path / "mlip_visnet.zip", params)
    assert is_mlip_zip(mlip_zip)
    force_field = load_model_from_zip(None, mlip_zip)
    info = force_field.dataset_info
    assert isinstance(force_field.network, Visnet)
    assert info.atomic_energies_map == {1: -1.5, 6: -3.25, 8: -2.0}
    assert (info.cutoff_distance_angstrom, info.scaling_mean) == (4.0, 0.3)
    assert (info.scaling_stdev, info.avg_num_neighbors) == (1.7, 6.0)
    expected = visnet_from_mlip_params(force_field.network, nested(params))
    assert eqx.tree_equal(force_field.network, expected)
    system = random_system(np.random.default_rng(2), 5, ELEMENTS)
    prediction = predict_graph(force_field, make_graph(force_field, system))
    assert np.all(np.isfinite(np.asarray(prediction.forces)))

    ours = tmp_path / "ours.zip"
    command = ["convert", "--from", "mlip", str(mlip_zip), "--output", str(ours)]
    assert main(command) == 0
    assert not is_mlip_zip(ours)
    assert eqx.tree_equal(load_model_from_zip(None, ours), force_field)


# mlip 0.1's NequIP config as mlip 0.2.5 saves a ``models_v1.Nequip``.
MLIP_V1_NEQUIP_CONFIG = {
    "num_layers": 2,
    "node_irreps": "8x0e + 8x0o + 4x1o + 4x1e",
    "l_max": 2,
    "num_bessel": 6,
    "radial_net_nonlinearity": "swish",
    "radial_net_n_hidden": 8,
    "radial_net_n_layers": 2,
    "radial_envelope": "polynomial_envelope",
    "scalar_mlp_std": 4.0,
    "atomic_energies": None,
    "avg_num_neighbors": None,
    "num_species": None,
    "deterministic_scatter_ops": False,
}


def mlip_v1_nequip_params(seed: int = 0) -> dict[str, np.ndarray]:
    """Random parameters of mlip 0.1's NequIP of ``MLIP_V1_NEQUIP_CONFIG``."""
    info = DatasetInfo(
        atomic_energies_map={z: 0.0 for z in ELEMENTS}, cutoff_distance_angstrom=4.0
    )
    fields = ("num_layers", "node_irreps", "l_max", "num_bessel")
    config = Nequip.Config(
        **{key: MLIP_V1_NEQUIP_CONFIG[key] for key in fields},
        radial_net_n_hidden=8,
    )
    network = Nequip(config, info, key=jax.random.key(0))
    rng = np.random.default_rng(seed)
    return {
        name: rng.normal(0.0, 0.5, shape).astype(np.float32)
        for name, shape in nequip_layout(network).items()
    }


def test_an_mlip_0_1_nequip_zip_loads_converted(tmp_path):
    """The published NequIP models are mlip 0.1's (``models_v1.Nequip``), in zips
    of mlip 0.1 (maybe without a version) or saved again by mlip 0.2."""
    params = mlip_v1_nequip_params()
    for version in ("0.2.5", "0.1.3", None):
        path = write_mlip_zip(
            tmp_path / f"nequip_{version}.zip", params, MLIP_V1_NEQUIP_CONFIG,
            version=version,
        )  # fmt: skip
        force_field = load_model_from_zip(None, path)
        assert isinstance(force_field.network, Nequip)
        assert force_field.dataset_info.atomic_energies_map == {
            1: -1.5, 6: -3.25, 8: -2.0,
        }  # fmt: skip
        assert force_field.network.avg_num_neighbors == 6.0
        expected = nequip_from_mlip_params(force_field.network, nested(params))
        assert eqx.tree_equal(force_field.network, expected)
    system = random_system(np.random.default_rng(2), 5, ELEMENTS)
    prediction = predict_graph(force_field, make_graph(force_field, system))
    assert np.all(np.isfinite(np.asarray(prediction.forces)))
    assert np.any(np.asarray(prediction.forces) != 0.0)
    wrong_species = write_mlip_zip(
        tmp_path / "species.zip", params, MLIP_V1_NEQUIP_CONFIG | {"num_species": 5}
    )
    with pytest.raises(MlipZipError, match="num_species=5 differs from the 3"):
        load_model_from_zip(None, wrong_species)
    future = write_mlip_zip(
        tmp_path / "future.zip", params, MLIP_V1_NEQUIP_CONFIG, version="0.3.0"
    )
    with pytest.raises(MlipZipError, match=r"mlip 0.3.0; only NequIP \(mlip 0.1\)"):
        load_model_from_zip(None, future)


# mlip 0.1's MACE config as mlip 0.2.5 saves a ``models_v1.Mace``.
MLIP_V1_MACE_CONFIG = {
    "num_layers": 2,
    "num_channels": 8,
    "l_max": 2,
    "node_symmetry": None,
    "correlation": 2,
    "readout_irreps": ["16x0e", "0e"],
    "num_readout_heads": 1,
    "include_pseudotensors": False,
    "num_bessel": 8,
    "activation": "silu",
    "radial_envelope": "polynomial_envelope",
    "symmetric_tensor_product_basis": False,
    "atomic_energies": None,
    "avg_num_neighbors": None,
    "avg_r_min": None,
    "num_species": None,
    "gate_nodes": False,
    "species_embedding_dim": None,
    "deterministic_scatter_ops": False,
}
# The energy (eV) that mlip 0.2.5 predicts, in float64, for the zip of
# ``mlip_v1_mace_params()`` on ``pinned_system()`` (computed once, 2026-12-07,
# with mlip's own ``load_model_from_zip(models_v1.Mace, ...)`` and its ASE
# calculator, the zip's float32 arrays cast to float64).
MLIP_V1_MACE_ENERGY = -11.708607749939082


def mlip_v1_mace_params(seed: int = 0) -> dict[str, np.ndarray]:
    """Random parameters of mlip 0.1's MACE of ``MLIP_V1_MACE_CONFIG``."""
    info = DatasetInfo(
        atomic_energies_map={z: 0.0 for z in ELEMENTS}, cutoff_distance_angstrom=4.0
    )
    config = Mace.Config(num_channels=8, l_max=2, num_layers=2, correlation=2)
    network = Mace(config, info, key=jax.random.key(0))
    rng = np.random.default_rng(seed)
    return {
        name: rng.normal(0.0, 1.0, shape).astype(np.float32)
        for name, shape in mace_v1_layout(network).items()
    }


def pinned_system():
    """A periodic cell of H, C and O for the energy pinned to mlip's."""
    return random_system(np.random.default_rng(3), 6, ELEMENTS)


def test_an_mlip_0_1_mace_zip_loads_converted_and_predicts_as_mlip(tmp_path):
    params = mlip_v1_mace_params()
    path = write_mlip_zip(tmp_path / "mace.zip", params, MLIP_V1_MACE_CONFIG)
    with jax.enable_x64(True):
        force_field = load_model_from_zip(None, path)
        assert isinstance(force_field.network, Mace)
        expected = mace_from_mlip_params(force_field.network, nested(params))
        assert eqx.tree_equal(force_field.network, expected)
        # mlip 0.1 divides its species-wise maps by sqrt(num_species), ours not.
        mlip_weight = params[
            "params/MaceBlock_0/layer_1/FullyConnectedTensorProduct_0/"
            "w[0,0,0] 8x0e,3x0e,8x0e"
        ]
        np.testing.assert_allclose(
            np.asarray(force_field.network.layers[1].species_linear.weights[0]),
            np.transpose(mlip_weight, (1, 0, 2)) / np.sqrt(3.0),
            rtol=1e-15,
        )
        system = pinned_system()
        prediction = predict_graph(force_field, make_graph(force_field, system))
        energy = float(prediction.energy[0])
    np.testing.assert_allclose(energy, MLIP_V1_MACE_ENERGY, rtol=1e-12)
    for option, value in (("gate_nodes", True), ("num_readout_heads", 2)):
        refused = write_mlip_zip(
            tmp_path / f"{option}.zip", params, MLIP_V1_MACE_CONFIG | {option: value}
        )
        with pytest.raises(MlipZipError, match=f"MACE option {option}={value}"):
            load_model_from_zip(None, refused)


def test_other_versions_architectures_and_options_are_named(tmp_path):
    params = mlip_params()
    old = write_mlip_zip(tmp_path / "old.zip", params, version="0.1.9")
    with pytest.raises(MlipZipError, match=r"old.zip: written by mlip 0.1.9; only"):
        load_model_from_zip(None, old)
    renamed = {
        f"params/layers_0/{name.split('/', 2)[2]}": array
        for name, array in params.items()
    }
    other = write_mlip_zip(tmp_path / "layers_0.zip", renamed)
    # Read as mlip 0.2's MACE, whose config options ViSNet's are not.
    with pytest.raises(MlipZipError, match=r"MACE config options \[.*\] are not"):
        load_model_from_zip(None, other)
    legacy = write_mlip_zip(
        tmp_path / "legacy.zip", params, MLIP_CONFIG | {"use_legacy_visnet": True}
    )
    with pytest.raises(MlipZipError, match="use_legacy_visnet=True is not supported"):
        load_model_from_zip(None, legacy)
    missing = dict(params)
    missing.pop(next(name for name in params if "visnet_layers_1" in name))
    with pytest.raises(MlipZipError, match=r"missing.zip: no mlip parameter for our"):
        load_model_from_zip(None, write_mlip_zip(tmp_path / "missing.zip", missing))
    command = ["convert", "--from", "mlip", str(old), "--output", str(tmp_path / "x")]
    with pytest.raises(SystemExit, match="written by mlip 0.1.9"):
        main(command)
