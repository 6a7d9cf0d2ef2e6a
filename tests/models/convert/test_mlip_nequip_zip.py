"""mlip 0.2's own NequIP zips (``mlip.models.Nequip``) convert to our force field
and predict what mlip 0.2.5 predicts: energies, forces and stress in float64.

Without mlip: a zip in mlip 0.2.5's layout (``nequip_v2_layout``: the names and
shapes of mlip's parameters, from our network of the converted config; random
weights) predicts the energies and forces that mlip 0.2.5 computed for it
(pinned). With mlip (its interpreter at ``MLIP_PYTHON``; slow: mlip compiles for
minutes), mlip builds NequIP force fields of several settings with its own random
weights, saves them with ``save_model_to_zip`` and predicts
(``mlip_nequip_reference.py``); the converted zips must agree to 1e-8 relative
(measured: 5e-14), the layout must be mlip's, and mlip must still predict the
pinned values.
"""

import functools
import glob
import json
import os
import subprocess
from pathlib import Path

import e3nn_jax as e3nn
import jax
import numpy as np
import pytest

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models import Nequip
from mlip_eqx.models.convert.mlip_zip import MlipZipError
from mlip_eqx.models.convert.nequip_v2 import nequip_v2_config
from mlip_eqx.models.model_io import load_model_from_zip
from mlip_eqx.testing.physics import predict_each
from mlip_eqx.testing.structures import random_system
from tests.models.convert.test_mlip_zip import write_mlip_zip

MLIP_PYTHON = os.environ.get("MLIP_EQX_MLIP_PYTHON", "/tmp/mlipvenv/bin/python")
REFERENCE_SCRIPT = Path(__file__).with_name("mlip_nequip_reference.py")
ELEMENTS = (1, 6, 8)
DATASET_INFO = {
    "atomic_energies_map": {"1": -1.5, "6": -3.25, "8": -2.0},
    "graph_cutoff_angstrom": 4.0,
    "avg_num_neighbors": 6.0,
    "scaling_mean": 0.3,
    "scaling_stdev": 1.7,
}
# mlip 0.2.5's NequIP config as its zips hold it (every option).
MLIP_CONFIG = {
    "add_atomic_energies": True,
    "num_layers": 2,
    "target_irreps": "8x0e + 8x0o + 4x1o + 4x1e + 2x2e + 2x2o",
    "l_max": 2,
    "num_rbf": 6,
    "radial_envelope": "polynomial_envelope",
    "radial_mlp_hidden": [8, 8],
    "radial_mlp_activation": "swish",
    "radial_mlp_variance_scale": 4.0,
    "num_readout_heads": 1,
    "avg_num_neighbors": None,
    "num_species": None,
    "predict_partial_charges": False,
    "use_coulomb_term": False,
    "use_total_charge_embedding": False,
    "embed_activation": "silu",
    "use_residual_connection": True,
    "gate_nonlinearities": {"e": "swish", "o": "tanh"},
    "deterministic_scatter_ops": False,
}
# Settings that mlip builds with random weights (changes of MLIP_CONFIG): one to
# three layers, l_max 1 to 3, with and without the residual connection and the
# odd-parity irreps, multiplicities with greatest common divisors 4 and 2.
SETTINGS = {
    "one_layer_l1": {
        "num_layers": 1, "target_irreps": "8x0e + 4x1o", "l_max": 1,
        "num_rbf": 4, "radial_mlp_hidden": [8], "radial_mlp_activation": "silu",
    },
    "two_layers_no_residual": {
        "use_residual_connection": False, "radial_envelope": "soft_envelope",
        "gate_nonlinearities": {"e": "silu", "o": "tanh"}, "num_readout_heads": 2,
    },
    "three_layers_l3": {
        "num_layers": 3, "l_max": 3, "num_rbf": 5, "avg_num_neighbors": 5.0,
        "target_irreps": "6x0e + 4x0o + 4x1o + 2x1e + 2x2e + 2x2o + 2x3o + 2x3e",
        "add_atomic_energies": False,
    },
}  # fmt: skip
# What mlip 0.2.5 predicts, in float64, with the zip of ``pinned_params()`` and
# MLIP_CONFIG (its own load_model_from_zip and run_batched_inference; computed
# once, 2026-12-08): the cell's and the molecule's energies (eV), and the forces
# on the cell's first atom (eV/Å).
PINNED_ENERGIES = (-11.907258927272258, -16.66739888967022)
PINNED_FORCES = (-0.003274026036153979, -0.00014173778767155901, 0.014663479379078567)


def structures() -> list:
    """A periodic cell and a molecule of H, C and O."""
    return [
        random_system(np.random.default_rng(3), 6, ELEMENTS),
        random_system(np.random.default_rng(4), 7, ELEMENTS, periodic=False),
    ]


def _e3j_blocks(source: e3nn.Irreps, target: e3nn.Irreps) -> list[tuple]:
    """(irrep, mul_in, mul_out) of each weight of e3j's linear map: one per pair of
    source and target irreps if they list the same irreps, else one per irrep of
    either, up to their highest degree (with empty weights)."""
    if [ir for _, ir in source] == [ir for _, ir in target]:
        return [(ir, m_in, m_out) for (m_in, ir), (m_out, _) in zip(source, target)]
    l_max = max(ir.l for _, ir in source + target)
    ins, outs = {ir: m for m, ir in source}, {ir: m for m, ir in target}
    irreps = sorted(
        e3nn.Irrep(degree, parity) for degree in range(l_max + 1) for parity in (1, -1)
    )
    return [
        (ir, ins.get(ir, 0), outs.get(ir, 0))
        for ir in irreps
        if ins.get(ir, 0) or outs.get(ir, 0)
    ]


def _linear_shapes(module: str, source, target, species: int | None = None) -> dict:
    prefix = () if species is None else (species,)
    return {
        f"{module}/weight{i}_{ir.l}_{ir.p}": (*prefix, m_out, m_in)
        for i, (ir, m_in, m_out) in enumerate(_e3j_blocks(source, target))
    }


def nequip_v2_layout(network: Nequip) -> dict[str, tuple]:
    """The names and shapes of mlip 0.2.5's NequIP parameters for ``network``."""
    shapes = {
        "params/NequipEmbeddingBlock_0/NodeEmbeddingBlock_0/embed/embedding": (
            network.embedding.shape
        )
    }
    for index, layer in enumerate(network.layers):
        prefix = f"params/NequipLayer_{index}"
        gates = layer.irreps.gate_in.regroup()
        if layer.self_connection is not None:
            shapes |= _linear_shapes(
                f"{prefix}/residual_block",
                layer.irreps.nonzero_in,
                gates,
                network.num_species,
            )
        convolution = f"{prefix}/convolution_block"
        source = layer.irreps.nonzero_in
        shapes |= _linear_shapes(f"{convolution}/linear_in", source, source)
        messages = layer.linear_out.irreps_in
        shapes |= _linear_shapes(f"{convolution}/linear_out", messages, gates)
        for k, weight in enumerate(layer.radial_mlp.weights):
            shapes[f"{convolution}/radial_mlp/layers_{k}/kernel"] = weight.shape
    readouts = "params/NequipMultiHeadReadoutBlock_0/MultiHeadReadoutBlock_0"
    features = network.layers[-1].irreps.nonzero_out
    for head, readout in enumerate(network.readouts):
        module = f"{readouts}/ReadoutBlock_{head}"
        hidden, output = readout.hidden, readout.output
        shapes |= _linear_shapes(f"{module}/Linear_0", features, hidden.irreps_out)
        shapes |= _linear_shapes(
            f"{module}/Linear_1", output.irreps_in, output.irreps_out
        )
    return shapes


def random_mlip_params(network_class, config, layout) -> dict[str, np.ndarray]:
    """Random parameters (N(0, 0.7), seed 7) of mlip's network of ``config`` in
    ``layout(our network)``: mlip's names and shapes, by "/"-path."""
    info = DatasetInfo(
        atomic_energies_map={z: 0.0 for z in ELEMENTS}, cutoff_distance_angstrom=4.0
    )
    with jax.enable_x64(True):  # the constants the float64 tests use too
        network = network_class(config, info)
    rng = np.random.default_rng(7)
    shapes = layout(network)
    return {name: rng.normal(0.0, 0.7, shape) for name, shape in shapes.items()}


@functools.cache
def pinned_params() -> dict[str, np.ndarray]:
    """Random parameters of mlip 0.2's NequIP of MLIP_CONFIG, by "/"-path."""
    return random_mlip_params(Nequip, nequip_v2_config(MLIP_CONFIG), nequip_v2_layout)


def write_zip(path: Path, params: dict, config: dict) -> Path:
    return write_mlip_zip(path, params, config, DATASET_INFO)


def test_an_mlip_0_2_nequip_zip_predicts_mlips_pinned_values(tmp_path):
    path = write_zip(tmp_path / "nequip.zip", pinned_params(), MLIP_CONFIG)
    with jax.enable_x64(True):
        force_field = load_model_from_zip(None, path)
        config = force_field.network.config
        assert isinstance(force_field.network, Nequip)
        assert not config.label_zero_irreps
        assert not config.self_connection_fan_in_species
        assert (config.num_bessel, config.radial_net_n_hidden) == (6, 8)
        predictions = predict_each(force_field, structures())
    energies = [float(prediction.energy) for prediction in predictions]
    np.testing.assert_allclose(energies, PINNED_ENERGIES, rtol=1e-12)
    np.testing.assert_allclose(predictions[0].forces[0], PINNED_FORCES, rtol=1e-10)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("predict_partial_charges", True, "predict_partial_charges=True is not"),
        ("radial_mlp_hidden", [8, 4], r"radial_mlp_hidden=\[8, 4\] is not"),
        ("radial_mlp_activation", "none", "radial_mlp_activation='none' is not"),
        ("gate_nonlinearities", {"e": "none", "o": "tanh"}, "gate_nonlinearities="),
        ("radial_envelope", "cosine_cutoff", "radial_envelope='cosine_cutoff' is"),
        ("use_moe", True, r"NequIP config options \['use_moe'\] are not known"),
    ],
)
def test_options_ours_cannot_compute_are_named(tmp_path, option, value, message):
    path = write_zip(
        tmp_path / "nequip.zip", pinned_params(), MLIP_CONFIG | {option: value}
    )
    with pytest.raises(MlipZipError, match=message):
        load_model_from_zip(None, path)


def test_a_misshapen_parameter_is_named(tmp_path):
    params = dict(pinned_params())
    name = "params/NequipLayer_1/convolution_block/linear_out/weight1_1_-1"
    params[name] = params[name][:, :-1]
    path = write_zip(tmp_path / "nequip.zip", params, MLIP_CONFIG)
    with (
        jax.enable_x64(True),  # reuses the float64 constants of pinned_params
        pytest.raises(MlipZipError, match="linear_out/weight1_1_-1' has shape"),
    ):
        load_model_from_zip(None, path)


def _mlip_site_packages() -> list[str]:
    root = Path(MLIP_PYTHON).parent.parent
    return glob.glob(str(root / "lib" / "python3*" / "site-packages" / "mlip"))


def mlip_reference_answers(
    directory: Path, model: str, settings: dict, jobs_config: dict, pinned: Path
) -> dict:
    """mlip's predictions (and parameter shapes) for the zips it writes of
    ``settings`` (changes of ``jobs_config``), then for the zip ``pinned``; runs
    mlip (``model``: "Nequip" or "Mace") once for all. Setting -> (zip, answer)."""
    jobs = [
        {
            "config": jobs_config | changes,
            "zip": str(directory / f"{name}.zip"),
            "seed": seed,
        }
        for seed, (name, changes) in enumerate(settings.items())
    ]
    request = {
        "model": model,
        "dataset_info": DATASET_INFO,
        "structures": [
            {
                "atomic_numbers": system.atomic_numbers.tolist(),
                "positions": system.positions.tolist(),
                "cell": np.asarray(system.cell).tolist(),
                "pbc": [bool(periodic) for periodic in system.pbc],
            }
            for system in structures()
        ],
        "jobs": [*jobs, {"load": str(pinned)}],
        "output": str(directory / "answers.json"),
    }
    (directory / "request.json").write_text(json.dumps(request))
    environment = {k: v for k, v in os.environ.items() if k != "MLIP_TESTING"}
    result = subprocess.run(
        [MLIP_PYTHON, str(REFERENCE_SCRIPT), str(directory / "request.json")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads((directory / "answers.json").read_text())
    zips = [directory / f"{name}.zip" for name in settings] + [pinned]
    return dict(zip([*settings, "pinned"], zip(zips, answers, strict=True)))


def assert_predicts_as_mlip(predictions: list, layout: dict, answer: dict) -> None:
    """Our predictions and parameter layout are mlip's (1e-8 relative)."""
    mlip_layout = {
        name.replace("params/mlip_network/", "params/"): tuple(shape)
        for name, shape in answer["shapes"].items()
    }
    assert layout == mlip_layout
    for index, prediction in enumerate(predictions):
        mlip_energy = answer["energy"][index]
        assert abs(prediction.energy - mlip_energy) <= 1e-8 * abs(mlip_energy)
        mlip_forces = np.asarray(answer["forces"][index])
        error = np.max(np.abs(prediction.forces - mlip_forces))
        assert error <= 1e-8 * np.max(np.abs(mlip_forces))
        if index == 0:  # the periodic cell
            mlip_stress = np.asarray(answer["stress"][index])
            error = np.max(np.abs(prediction.stress - mlip_stress))
            assert error <= 1e-8 * np.max(np.abs(mlip_stress))


@pytest.fixture(scope="module")
def mlip_answers(tmp_path_factory):
    """mlip's predictions for the zips it writes of SETTINGS and the pinned zip."""
    directory = tmp_path_factory.mktemp("mlip_nequip")
    pinned = write_zip(directory / "pinned.zip", pinned_params(), MLIP_CONFIG)
    return mlip_reference_answers(directory, "Nequip", SETTINGS, MLIP_CONFIG, pinned)


needs_mlip = pytest.mark.skipif(
    not Path(MLIP_PYTHON).exists() or not _mlip_site_packages(),
    reason=f"needs mlip 0.2.5 in the interpreter {MLIP_PYTHON} (MLIP_EQX_MLIP_PYTHON)",
)


@pytest.mark.slow
@needs_mlip
@pytest.mark.parametrize("setting", [*SETTINGS, "pinned"])
def test_converted_mlip_nequip_zips_predict_as_mlip(mlip_answers, setting):
    path, answer = mlip_answers[setting]
    with jax.enable_x64(True):
        force_field = load_model_from_zip(None, path)
        predictions = predict_each(force_field, structures())
    assert_predicts_as_mlip(predictions, nequip_v2_layout(force_field.network), answer)
    if setting == "pinned":
        np.testing.assert_allclose(answer["energy"], PINNED_ENERGIES, rtol=1e-12)
        np.testing.assert_allclose(answer["forces"][0][0], PINNED_FORCES, rtol=1e-10)
