"""mlip 0.2's own MACE zips (``mlip.models.Mace``, on e3j) convert to our force
field and predict what mlip 0.2.5 predicts: energies, forces and stress in float64.

Without mlip: a zip in mlip 0.2.5's layout (``mace_v2_layout``, random weights)
predicts the energies and forces that mlip 0.2.5 computed for it (pinned); e3j's
power features (reimplemented in numpy) are equivariant homogeneous polynomials,
as many as e3j has, and their weights map onto ours exactly. With mlip (slow, as in
``test_mlip_nequip_zip.py``), mlip builds MACE force fields of several settings
(contraction backends e3j, e3nn and e3nn_symmetric) with its own random weights;
the converted zips must agree to 1e-8 relative, the layout must be mlip's, and
mlip must still predict the pinned values.
"""

import functools

import e3nn_jax as e3nn
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.transform import Rotation

from mlip_eqx.models import Mace
from mlip_eqx.models.convert.e3j_power import (
    contraction_weights_from_e3j,
    e3j_power_counts,
    e3j_power_features,
)
from mlip_eqx.models.convert.mace_v2 import mace_v2_config, mlip_interaction_irreps
from mlip_eqx.models.convert.mlip_zip import MlipZipError
from mlip_eqx.models.mace.symmetric_contraction import SymmetricContraction
from mlip_eqx.models.model_io import load_model_from_zip
from mlip_eqx.testing.physics import predict_each
from tests.models.convert.test_mlip_nequip_zip import (
    _linear_shapes,
    assert_predicts_as_mlip,
    mlip_reference_answers,
    needs_mlip,
    random_mlip_params,
    structures,
    write_zip,
)

ELEMENTS = (1, 6, 8)
# mlip 0.2.5's MACE config as its zips hold it (every option), small.
MLIP_CONFIG = {
    "num_layers": 2, "num_channels": 4, "l_max": 2, "node_symmetry": 1,
    "correlation": 3, "readout_irreps": ["4x0e", "0e"], "num_readout_heads": 1,
    "include_pseudotensors": False, "num_rbf": 6, "activation": "silu",
    "radial_envelope": "polynomial_envelope", "radial_mlp_hidden": [8, 8],
    "radial_mlp_activation": "silu", "avg_num_neighbors": None, "avg_r_min": None,
    "num_species": None, "gate_nodes": False,
    "residual_connection_first_layer": False, "soft_normalization": None,
    "predict_partial_charges": False, "use_coulomb_term": False,
    "use_total_charge_embedding": False, "embed_activation": "silu",
    "deterministic_scatter_ops": False, "symmetric_contraction_backend": "e3j",
    "use_gaunt_tp_message_passing": False, "add_atomic_energies": True,
}  # fmt: skip
# Settings that mlip builds with random weights (changes of MLIP_CONFIG).
SETTINGS = {
    "one_layer_l1_correlation_2": {
        "num_layers": 1, "l_max": 1, "node_symmetry": 1, "correlation": 2,
        "radial_mlp_hidden": [8],
    },
    "three_layers_l3": {
        "num_layers": 3, "l_max": 3, "node_symmetry": 2,
        "residual_connection_first_layer": True, "radial_envelope": "soft_envelope",
        "activation": "tanh", "radial_mlp_activation": "tanh",
        "num_readout_heads": 2, "add_atomic_energies": False, "avg_num_neighbors": 3.0,
    },
    "correlation_1": {"correlation": 1},
    "e3nn_backend": {"symmetric_contraction_backend": "e3nn"},
    "e3nn_symmetric_backend": {
        "symmetric_contraction_backend": "e3nn_symmetric", "correlation": 2,
    },
    "pseudotensors": {"include_pseudotensors": True, "node_symmetry": 2},
}  # fmt: skip
# What mlip 0.2.5 predicts, in float64, with the zip of ``pinned_params()`` and
# MLIP_CONFIG (its own load_model_from_zip and run_batched_inference; computed
# once, 2026-12-08): the cell's and the molecule's energies (eV), and the forces
# on the cell's first atom (eV/Å). The network's part of the energies is small:
# it is compared without the structures' E0 and scaling mean (OFFSETS).
PINNED_ENERGIES = (-11.699701650121245, -16.39945381990609)
PINNED_FORCES = (9.771847797533996e-05, -1.9515599740425635e-05, -7.608385753381865e-05)
OFFSETS = (-11.7, -16.4)


def mace_v2_layout(network: Mace, backend: str = "e3j") -> dict[str, tuple]:
    """The names and shapes of mlip 0.2.5's MACE parameters for ``network``,
    whose contraction has mlip's ``backend``."""
    shapes = {
        "params/embedding_block/node_embedding_block/embed/embedding": (
            network.embedding.shape
        )
    }
    for index, layer in enumerate(network.layers):
        prefix = f"params/layers_{index}"
        block = f"{prefix}/interaction_block"
        interaction = layer.interaction
        source = interaction.linear_up.irreps_in
        shapes |= _linear_shapes(f"{block}/linear_in", source, source)
        for k, weight in enumerate(interaction.radial_mlp.weights):
            shapes[f"{block}/radial_mlp/layers_{k}/kernel"] = weight.shape
        # mlip's interactions output all its irreps, some zero (pseudotensors).
        everything = interaction.target_irreps
        shapes |= _linear_shapes(
            f"{block}/linear_out", interaction.linear_down.irreps_in, everything
        )
        if layer.has_residual:
            species = layer.species_linear
            source, target = species.irreps_in, species.irreps_out
        else:
            source = target = everything
        name = "residual_block" if layer.has_residual else "linear_by_species_block"
        shapes |= _linear_shapes(
            f"{prefix}/{name}", source, target, network.num_species
        )
        expansion = f"{prefix}/expansion_block"
        shapes |= _contraction_shapes(
            f"{expansion}/symmetric_contraction",
            layer.product_basis.symmetric_contraction,
            backend,
            mlip_interaction_irreps(network.config),
        )
        linear = layer.product_basis.linear
        shapes |= _linear_shapes(
            f"{expansion}/linear_block", linear.irreps_in, linear.irreps_out
        )
        for head, readout in enumerate(layer.readouts):
            module = f"{prefix}/readout_block/ReadoutBlock_{head}"
            maps = (
                [readout.linear]
                if hasattr(readout, "linear")
                else [readout.hidden, readout.output]
            )
            for k, linear in enumerate(maps):
                shapes |= _linear_shapes(
                    f"{module}/Linear_{k}", linear.irreps_in, linear.irreps_out
                )
    return shapes


def _contraction_shapes(module: str, contraction, backend: str, source) -> dict:
    """e3nn backends: our weights; e3j: one LinearIndexwise weight per irrep,
    [species, channels, 1, features of all orders of mlip's ``source``]."""
    if backend != "e3j":
        return {f"{module}/{key}": w.shape for key, w in contraction.weights.items()}
    counts = e3j_power_counts(source, contraction.irreps_out, contraction.correlation)
    species, _, channels = next(iter(contraction.weights.values())).shape
    return {
        f"{module}/LinearIndexwise_0/weight{i}_{ir.l}_{ir.p}": (
            species,
            channels,
            1,
            sum(count.get(str(ir), 0) for count in counts),
        )
        for i, (_, ir) in enumerate(contraction.irreps_out)
    }


@functools.cache
def pinned_params() -> dict[str, np.ndarray]:
    """Random parameters of mlip 0.2's MACE of MLIP_CONFIG, by "/"-path."""
    return random_mlip_params(Mace, mace_v2_config(MLIP_CONFIG), mace_v2_layout)


def test_an_mlip_0_2_mace_zip_predicts_mlips_pinned_values(tmp_path):
    path = write_zip(tmp_path / "mace.zip", pinned_params(), MLIP_CONFIG)
    with jax.enable_x64(True):
        force_field = load_model_from_zip(None, path)
        config = force_field.network.config
        assert isinstance(force_field.network, Mace)
        assert not config.first_layer_residual
        assert not config.symmetric_tensor_product_basis
        assert config.avg_num_neighbors is None and config.avg_r_min is None
        predictions = predict_each(force_field, structures())
    energies = np.subtract([float(p.energy) for p in predictions], OFFSETS)
    pinned = np.subtract(PINNED_ENERGIES, OFFSETS)
    np.testing.assert_allclose(energies, pinned, rtol=1e-9)
    np.testing.assert_allclose(predictions[0].forces[0], PINNED_FORCES, rtol=1e-10)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"gate_nodes": True}, "gate_nodes=True is not"),
        ({"soft_normalization": 2.0}, "soft_normalization=2.0 is not"),
        ({"symmetric_contraction_backend": "gaunt_tp"}, "backend='gaunt_tp' is"),
        ({"use_gaunt_tp_message_passing": True}, "use_gaunt_tp_message_passing="),
        ({"radial_mlp_activation": "tanh"}, "radial_mlp_activation='tanh' is"),
        ({"radial_envelope": "cosine_cutoff"}, "radial_envelope='cosine_cutoff'"),
        ({"activation": "none"}, "activation='none' is not"),
        ({"readout_irreps": ["4x0e + 2x1o", "0e"]}, "readout_irreps=.* is not"),
        ({"predict_partial_charges": True}, "predict_partial_charges=True is"),
        ({"use_coulomb_term": True}, "use_coulomb_term=True is not"),
        (
            {"include_pseudotensors": True, "symmetric_contraction_backend": "e3nn"},
            r"include_pseudotensors=True is not supported \(only False with the e3nn",
        ),
        ({"use_moe": True}, r"MACE config options \['use_moe'\] are not known"),
    ],
)
def test_options_ours_cannot_compute_are_named(tmp_path, changes, message):
    path = write_zip(tmp_path / "mace.zip", pinned_params(), MLIP_CONFIG | changes)
    with pytest.raises(MlipZipError, match=message):
        load_model_from_zip(None, path)


def test_a_misshapen_contraction_weight_is_named(tmp_path):
    params = dict(pinned_params())
    name = "params/layers_1/expansion_block/symmetric_contraction/LinearIndexwise_0/"
    name += "weight0_0_1"
    params[name] = params[name][..., :-1]
    path = write_zip(tmp_path / "mace.zip", params, MLIP_CONFIG)
    with (
        jax.enable_x64(True),  # reuses the float64 constants of pinned_params
        pytest.raises(MlipZipError, match="LinearIndexwise_0/weight0_0_1' has shape"),
    ):
        load_model_from_zip(None, path)


def test_e3j_power_features_are_equivariant_and_map_onto_ours():
    source, keep = e3nn.Irreps("0e + 1o"), e3nn.Irreps("0e + 1o")
    # e3j's counts per order: the multiplicities in the tensor powers of 0e + 1o.
    counts = e3j_power_counts(source, keep, 3)
    assert counts == [{"0e": 1, "1o": 1}, {"0e": 2, "1o": 2}, {"0e": 4, "1o": 6}]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, source.dim))
    # A rotation with inversion, in float64 numpy (in e3nn's basis, 1o transforms
    # by the 3x3 matrix itself).
    rotation = -Rotation.random(random_state=2).as_matrix()
    source_matrix = scipy.linalg.block_diag(1.0, rotation)
    wigner = {"0e": np.ones((1, 1)), "1o": rotation}
    rotated = x @ source_matrix.T
    features = e3j_power_features(x, source, keep, 3)
    for power, (order, of_rotated) in zip(
        features, enumerate(e3j_power_features(rotated, source, keep, 3), start=1)
    ):
        for ir, block in power.items():
            np.testing.assert_allclose(of_rotated[ir], block @ wigner[ir].T, atol=1e-12)
        scaled = e3j_power_features(1.5 * x, source, keep, 3)[order - 1]
        for ir, block in power.items():
            np.testing.assert_allclose(scaled[ir], 1.5**order * block, atol=1e-12)
    # Random e3j weights, converted, give e3j's contraction (l_max 2, keep 0e-1o).
    source, keep = e3nn.Irreps("0e + 1o + 2e"), e3nn.Irreps("0e + 1o")
    species, channels = 2, 3
    with jax.enable_x64(True):
        ours = SymmetricContraction(
            source, keep, correlation=3, num_species=species,
            num_channels=channels, symmetric_basis=False, dtype=np.float64,
            key=jax.random.key(0),
        )  # fmt: skip
        totals = {
            ir: sum(count[ir] for count in e3j_power_counts(source, keep, 3))
            for ir in ("0e", "1o")
        }
        weights = {
            ir: (f"weight_{ir}", rng.standard_normal((species, channels, 1, total)))
            for ir, total in totals.items()
        }
        converted = contraction_weights_from_e3j(ours, source, keep, weights)
        converted = {key: jnp.asarray(w) for key, w in converted.items()}
        ours = eqx.tree_at(lambda c: c.weights, ours, converted)
        x = rng.standard_normal((4, channels, source.dim))
        node_species = np.array([0, 1, 1, 0])
        contract = eqx.filter_jit(lambda c, x, s: c(x, s).array)
        output = np.asarray(contract(ours, jnp.asarray(x), jnp.asarray(node_species)))
    features = e3j_power_features(x.reshape(-1, source.dim), source, keep, 3)
    for (_, ir), block in zip(ours.irreps_out, ours.irreps_out.slices()):
        stacked = np.concatenate([power[str(ir)] for power in features], axis=1)
        stacked = stacked.reshape(4, channels, -1, ir.dim)
        w = weights[str(ir)][1][node_species, :, 0, :]  # [node, channel, features]
        expected = np.einsum("ncmd,ncm->ncd", stacked, w)
        np.testing.assert_allclose(output[..., block], expected, atol=1e-11)


@pytest.fixture(scope="module")
def mlip_answers(tmp_path_factory):
    """mlip's predictions for the zips it writes of SETTINGS and the pinned zip."""
    directory = tmp_path_factory.mktemp("mlip_mace")
    pinned = write_zip(directory / "pinned.zip", pinned_params(), MLIP_CONFIG)
    return mlip_reference_answers(directory, "Mace", SETTINGS, MLIP_CONFIG, pinned)


@pytest.mark.slow
@needs_mlip
@pytest.mark.parametrize("setting", [*SETTINGS, "pinned"])
def test_converted_mlip_mace_zips_predict_as_mlip(mlip_answers, setting):
    path, answer = mlip_answers[setting]
    with jax.enable_x64(True):
        force_field = load_model_from_zip(None, path)
        predictions = predict_each(force_field, structures())
    backend = (MLIP_CONFIG | SETTINGS.get(setting, {}))["symmetric_contraction_backend"]
    layout = mace_v2_layout(force_field.network, backend)
    assert_predicts_as_mlip(predictions, layout, answer)
    if setting == "pinned":
        np.testing.assert_allclose(answer["energy"], PINNED_ENERGIES, rtol=1e-12)
        np.testing.assert_allclose(answer["forces"][0][0], PINNED_FORCES, rtol=1e-10)
