"""mace-torch's MACE models (``mace.modules.MACE`` and ``ScaleShiftMACE``, e.g. the
MACE-MP-0 foundation models) into our :class:`~mlip_eqx.models.Mace`.

Every hyperparameter is read from the torch module itself; the weights are
mapped by :mod:`mlip_eqx.models.convert.mace_torch_weights`. A class or option
that our MACE does not have is refused with :class:`MaceTorchConversionError`,
naming it: the converted model is the same function as mace-torch's or there is
none. torch and mace-torch are needed to convert only (the ``convert`` extra);
the converted force field saves as our zip and runs without them.
"""

import dataclasses
import os
from pathlib import Path
from typing import Any

import e3nn_jax as e3nn
import numpy as np

from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models.blocks.pair_terms import (
    AGNESI_A,
    AGNESI_P,
    AGNESI_Q,
    SOFT_ALPHA,
    ZBL_COEFFICIENTS,
    ZBL_SCREENING_EXPONENT,
    ZBL_SCREENING_PREFACTOR,
)
from mlip_eqx.models.force_field import ForceField
from mlip_eqx.models.mace import Mace, MaceConfig
from mlip_eqx.models.mace.symmetric_contraction import symmetric_basis_size

SUPPORTED_MODEL_CLASSES = ("MACE", "ScaleShiftMACE")
FIRST_INTERACTION_CLASSES = (
    "RealAgnosticInteractionBlock",
    "RealAgnosticResidualInteractionBlock",
    "RealAgnosticDensityInteractionBlock",
    "RealAgnosticDensityResidualInteractionBlock",
)
LATER_INTERACTION_CLASSES = (
    "RealAgnosticResidualInteractionBlock",
    "RealAgnosticDensityResidualInteractionBlock",
)
RESIDUAL_INTERACTION_CLASSES = (
    "RealAgnosticResidualInteractionBlock",
    "RealAgnosticDensityResidualInteractionBlock",
)
DISTANCE_TRANSFORMS = {  # mace-torch class: (ours, its constants and their values)
    "AgnesiTransform": (
        "agnesi",
        {"q": AGNESI_Q, "p": AGNESI_P, "a": AGNESI_A},
    ),
    "SoftTransform": ("soft", {"alpha": SOFT_ALPHA}),
}
ZBL_CONSTANTS = {
    "a_exp": ZBL_SCREENING_EXPONENT,
    "a_prefactor": ZBL_SCREENING_PREFACTOR / 0.529,
}


class MaceTorchConversionError(ValueError):
    """A file or module that is not a mace-torch MACE model this converter
    supports; the message names the file, class or option."""


@dataclasses.dataclass(frozen=True)
class MaceTorchModel:
    """What a mace-torch MACE model is, read from its module.

    Attributes:
        config: Our MACE's hyperparameters of the same network.
        dataset_info: Cutoff, avg_num_neighbors, the E0s of every head and the
            energy scaling (of head 0, see :func:`read_mace_torch_model`).
        head_scales: Factor of every head's readouts relative to
            ``dataset_info.scaling_stdev`` (1 unless heads have different scales).
        gate_scale: mace-torch's normalisation constant of the gate (silu) in
            its readout and radial MLPs.
    """

    config: MaceConfig
    dataset_info: DatasetInfo
    head_scales: tuple[float, ...]
    gate_scale: float


def _torch():
    """torch and mace-torch's modules, imported (mace first: it sets up e3nn's
    loading of its constants under torch 2.6+)."""
    try:
        import mace.modules  # noqa: F401
        import torch
    except ImportError as error:
        raise ImportError(
            "Converting mace-torch models needs torch and mace-torch: "
            'pip install "mlip_eqx[convert]".'
        ) from error
    return torch


def load_mace_torch_model(path: str | os.PathLike) -> Any:
    """The mace-torch model saved in a file with ``torch.save`` (a whole module,
    as mace-torch's foundation models are distributed).

    torch unpickles the file, which can run code: load only files you trust.

    Args:
        path: The model file (e.g. "2023-12-03-mace-128-L1_epoch-199.model").

    Returns:
        The torch module, on the CPU, in evaluation mode.

    Raises:
        FileNotFoundError: If there is no such file.
        MaceTorchConversionError: If the file holds no torch module (e.g. a
            state dict or a non-torch file).
    """
    torch = _torch()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file.")
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many kinds for a non-model file
        raise MaceTorchConversionError(
            f"{path}: not a torch model file ({type(error).__name__}: {error})."
        ) from None
    if not isinstance(model, torch.nn.Module):
        raise MaceTorchConversionError(
            f"{path}: holds a {type(model).__name__}, not a mace-torch model "
            "(a module saved with torch.save; a state dict is not enough)."
        )
    return model.eval()


def read_mace_torch_model(model: Any) -> MaceTorchModel:
    """Our config and DatasetInfo of a mace-torch MACE, read from its module.

    The energy of a node in mace-torch's ``ScaleShiftMACE`` is ``E0[head, Z] +
    scale[head] * readouts + shift[head]`` (``MACE``: scale 1, shift 0). Ours
    takes ``scaling_stdev`` and ``scaling_mean`` from head 0; a head with
    another scale gets it folded into its readout weights (``head_scales``) and
    one with another shift into its E0s.

    Args:
        model: A ``mace.modules.MACE`` or ``ScaleShiftMACE``.

    Raises:
        MaceTorchConversionError: If the model's class, one of its blocks or an
            option is not supported (the message names it).
    """
    torch = _torch()
    from mace.modules.models import MACE, ScaleShiftMACE

    name = type(model).__name__
    if type(model) not in (MACE, ScaleShiftMACE):
        raise MaceTorchConversionError(
            f"{name} models are not supported: only mace-torch's "
            f"{' and '.join(SUPPORTED_MODEL_CLASSES)} convert."
        )
    _check_options(model)
    distance_transform = _distance_transform(model)
    pair_repulsion = _pair_repulsion(model)
    interactions = list(model.interactions)
    first, later = interactions[0], interactions[1:]
    for block, allowed in [(first, FIRST_INTERACTION_CLASSES)] + [
        (block, LATER_INTERACTION_CLASSES) for block in later
    ]:
        if type(block).__name__ not in allowed:
            position = "first" if block is first else "later"
            raise MaceTorchConversionError(
                f"interaction block {type(block).__name__} ({position} layer) is "
                f"not supported; supported: {', '.join(allowed)}."
            )
    if len(interactions) < 2:
        raise MaceTorchConversionError(
            "models with one interaction (num_interactions=1) are not supported."
        )
    classes = [type(block).__name__ for block in interactions]
    density = {"Density" in name for name in classes}
    if len(density) != 1:
        raise MaceTorchConversionError(
            f"interaction blocks {classes} mix density-normalised and "
            "avg_num_neighbors-normalised layers, which is not supported."
        )
    heads = [str(head) for head in model.heads]
    hidden = _irreps(model.products[0].linear.irreps_out)
    num_channels = hidden[0].mul
    node_symmetry = max(ir.l for _, ir in hidden)
    if hidden != num_channels * e3nn.Irreps.spherical_harmonics(node_symmetry):
        raise MaceTorchConversionError(
            f"hidden_irreps {hidden} are not supported: only "
            "Cx0e + Cx1o + ... (one multiplicity, parity (-1)^l)."
        )
    l_max = int(model.spherical_harmonics._lmax)
    expected = num_channels * e3nn.Irreps.spherical_harmonics(l_max)
    for block in interactions:
        if _irreps(block.target_irreps) != expected:
            raise MaceTorchConversionError(
                f"interaction irreps {block.target_irreps} are not supported "
                f"(expected {expected})."
            )
    last_hidden = _irreps(model.products[-1].linear.irreps_out)
    if last_hidden != e3nn.Irreps(f"{num_channels}x0e"):
        raise MaceTorchConversionError(
            f"a last layer with irreps {last_hidden} (keep_last_layer_irreps) is "
            "not supported."
        )
    correlations = {
        len(product.symmetric_contractions.contractions[0].weights) + 1
        for product in model.products
    }
    if len(correlations) != 1:
        raise MaceTorchConversionError(
            f"a correlation per layer ({sorted(correlations)}) is not supported."
        )
    radial_sizes = {tuple(block.conv_tp_weights.hs[1:-1]) for block in interactions}
    if len(radial_sizes) != 1:
        raise MaceTorchConversionError(
            "radial MLPs of different sizes per layer are not supported."
        )
    neighbours = {float(block.avg_num_neighbors) for block in interactions}
    if len(neighbours) != 1:
        raise MaceTorchConversionError(
            "an avg_num_neighbors per layer is not supported."
        )
    gate_scale = _gate_scale(model, torch)
    mlp_irreps = _irreps(model.readouts[-1].hidden_irreps)
    if mlp_irreps != e3nn.Irreps(f"{mlp_irreps.num_irreps}x0e") or (
        mlp_irreps.num_irreps % len(heads)
    ):
        raise MaceTorchConversionError(
            f"MLP_irreps {mlp_irreps} are not supported: only scalars (0e), the "
            "same number per head."
        )
    radial = model.radial_embedding
    num_bessel = len(radial.bessel_fn.bessel_weights)
    r_max = float(model.r_max)
    default = np.pi / r_max * np.arange(1, num_bessel + 1)
    frequencies = radial.bessel_fn.bessel_weights.detach().double().numpy()
    if not np.allclose(frequencies, default, rtol=1e-6, atol=0.0):
        raise MaceTorchConversionError(
            "trained Bessel frequencies (BesselBasis(trainable=True)) are not "
            "supported."
        )
    config = MaceConfig(
        num_layers=len(interactions),
        num_channels=num_channels,
        l_max=l_max,
        node_symmetry=node_symmetry,
        correlation=correlations.pop(),
        readout_irreps=(f"{mlp_irreps.num_irreps // len(heads)}x0e", "0e"),
        num_readout_heads=len(heads),
        num_bessel=num_bessel,
        activation="silu",
        radial_envelope="polynomial_envelope",
        polynomial_cutoff_power=int(radial.cutoff_fn.p),
        radial_mlp_hidden=tuple(int(size) for size in radial_sizes.pop()),
        first_layer_residual=classes[0] in RESIDUAL_INTERACTION_CLASSES,
        symmetric_tensor_product_basis=_uses_symmetric_basis(model, l_max),
        normalise_radial_embedding=False,
        density_normalisation=density.pop(),
        distance_transform=distance_transform,
        pair_repulsion=pair_repulsion,
    )
    dataset_info, head_scales = _dataset_info(model, heads, r_max, neighbours.pop())
    if pair_repulsion and len(set(head_scales)) > 1:
        raise MaceTorchConversionError(
            "pair_repulsion (ZBL) with heads of different energy scales "
            f"({head_scales} relative to head 0) is not supported."
        )
    return MaceTorchModel(config, dataset_info, head_scales, gate_scale)


def force_field_from_mace_torch(model: Any, predict_stress: bool = True) -> ForceField:
    """Our force field of a mace-torch MACE model: the same energies, forces and
    stress (to 1e-8 relative in float64, tested).

    The arrays get the dtype of this session (float64 with ``jax_enable_x64``).

    Args:
        model: A ``mace.modules.MACE`` or ``ScaleShiftMACE`` module, or the path
            of a file saved with ``torch.save`` (see
            :func:`load_mace_torch_model`).
        predict_stress: Whether the force field computes stress.

    Returns:
        The force field; its DatasetInfo has the model's E0s (one map per head,
        named by the heads when there are several), cutoff and
        avg_num_neighbors.

    Raises:
        FileNotFoundError: If a path names no file.
        MaceTorchConversionError: If the file or module is not a supported
            mace-torch model (the message names the class or option).
    """
    from mlip_eqx.models.convert.mace_torch_weights import mace_from_torch

    source = ""
    if isinstance(model, str | os.PathLike):
        source = f"{model}: "
        model = load_mace_torch_model(model)
    try:
        read = read_mace_torch_model(model)
        network = Mace(read.config, read.dataset_info)
        network = mace_from_torch(network, model, read.head_scales, read.gate_scale)
    except MaceTorchConversionError as error:
        raise MaceTorchConversionError(f"{source}{error}") from None
    return ForceField(network, predict_stress=predict_stress)


def _irreps(irreps: Any) -> e3nn.Irreps:
    """e3nn-jax's irreps of e3nn (torch) irreps, simplified."""
    return e3nn.Irreps(str(irreps)).simplify()


def _check_options(model: Any) -> None:
    """Refuses the options of ``mace.modules.MACE`` that our MACE lacks."""
    refused = {
        "joint_embedding": "embedding_specs (joint embeddings)",
        "embedding_readout": "use_embedding_readout",
    }
    for attribute, option in refused.items():
        if attribute in model._modules:
            raise MaceTorchConversionError(f"the option {option} is not supported.")
    radial = model.radial_embedding
    basis = type(radial.bessel_fn).__name__
    if basis != "BesselBasis":
        raise MaceTorchConversionError(f"the radial basis {basis} is not supported.")
    flags = {
        "apply_cutoff": True,
        "use_so3": False,
        "use_agnostic_product": False,
        "use_last_readout_only": False,
    }
    for flag, supported in flags.items():
        value = model.__dict__.get(flag, supported)
        if bool(value) != supported:
            raise MaceTorchConversionError(
                f"the option {flag}={value} is not supported."
            )
    if model.__dict__.get("edge_irreps") is not None:
        raise MaceTorchConversionError(
            f"the option edge_irreps={model.edge_irreps} is not supported."
        )
    readouts = [type(readout).__name__ for readout in model.readouts]
    expected = ["LinearReadoutBlock"] * (len(readouts) - 1) + ["NonLinearReadoutBlock"]
    if readouts != expected or len(readouts) != len(model.interactions):
        raise MaceTorchConversionError(
            f"readouts {readouts} are not supported (expected {expected})."
        )
    for product in model.products:
        contraction = type(product.symmetric_contractions).__name__
        if contraction != "SymmetricContraction":
            raise MaceTorchConversionError(
                f"the symmetric contraction {contraction} (cuequivariance or "
                "openequivariance) is not supported; convert the model back to "
                "e3nn with mace-torch's tools first."
            )


def _distance_transform(model: Any) -> str:
    """Our name of the model's distance transform, after checking its
    constants."""
    radial = model.radial_embedding
    if "distance_transform" not in radial._modules:
        return "none"
    transform = radial.distance_transform
    name = type(transform).__name__
    if name not in DISTANCE_TRANSFORMS:
        raise MaceTorchConversionError(
            f"the distance transform {name} is not supported; supported: "
            f"{', '.join(DISTANCE_TRANSFORMS)}."
        )
    ours, constants = DISTANCE_TRANSFORMS[name]
    _check_constants(transform, constants, name)
    return ours


def _pair_repulsion(model: Any) -> bool:
    """Whether the model adds the ZBL repulsion, after checking that it is
    mace-torch's with our constants and the radial envelope's power."""
    if "pair_repulsion_fn" not in model._modules:
        return False
    zbl = model.pair_repulsion_fn
    name = type(zbl).__name__
    if name != "ZBLBasis":
        raise MaceTorchConversionError(f"the pair repulsion {name} is not supported.")
    _check_constants(zbl, ZBL_CONSTANTS, name)
    coefficients = zbl.c.detach().double().numpy()
    if not np.allclose(coefficients, ZBL_COEFFICIENTS, rtol=1e-6, atol=0.0):
        raise MaceTorchConversionError(
            f"{name} with coefficients c={coefficients.tolist()} is not supported "
            f"(expected {list(ZBL_COEFFICIENTS)})."
        )
    power, radial_power = int(zbl.p), int(model.radial_embedding.cutoff_fn.p)
    if power != radial_power:
        raise MaceTorchConversionError(
            f"{name} with envelope power p={power} other than the radial "
            f"cutoff's ({radial_power}) is not supported."
        )
    return True


def _check_constants(module: Any, constants: dict[str, float], name: str) -> None:
    """Refuses a module whose (trained or changed) constants differ from ours."""
    for attribute, expected in constants.items():
        value = float(getattr(module, attribute))
        if not np.isclose(value, expected, rtol=1e-6, atol=0.0):
            raise MaceTorchConversionError(
                f"{name} with {attribute}={value} is not supported (ours: "
                f"{expected}; trained constants are not)."
            )


def _gate_scale(model: Any, torch: Any) -> float:
    """The normalisation constant of the activations of the readout and radial
    MLPs, after checking that they are the SiLU."""
    activations = [model.readouts[-1].non_linearity.acts[0]] + [
        getattr(block.conv_tp_weights, f"layer{index}").act
        for block in model.interactions
        for index in range(len(block.conv_tp_weights.hs) - 2)
    ]
    for activation in activations:
        function = getattr(activation, "f", None)
        if function is not torch.nn.functional.silu:
            raise MaceTorchConversionError(
                f"the activation {getattr(function, '__name__', function)} is not "
                "supported (only silu)."
            )
    scales = {float(activation.cst) for activation in activations}
    if len(scales) != 1:
        raise MaceTorchConversionError("activations normalised differently.")
    return scales.pop()


def _uses_symmetric_basis(model: Any, l_max: int) -> bool:
    """Whether mace-torch's contraction has as many weights as our symmetric
    basis (its reduced-CG ``U`` matrices) rather than our general one."""
    contraction = model.products[0].symmetric_contractions.contractions[0]
    order = len(contraction.weights) + 1
    num_weights = contraction.weights_max.shape[1]
    irreps_in = e3nn.Irreps.spherical_harmonics(l_max)
    return symmetric_basis_size(irreps_in, order, "0e") == num_weights


def _dataset_info(
    model: Any, heads: list[str], r_max: float, avg_num_neighbors: float
) -> tuple[DatasetInfo, tuple[float, ...]]:
    """The DatasetInfo of the model and every head's scale relative to head 0's."""
    atomic_numbers = [int(z) for z in model.atomic_numbers]
    energies = np.atleast_2d(
        model.atomic_energies_fn.atomic_energies.detach().double().numpy()
    )
    num_heads = len(heads)
    if energies.shape != (num_heads, len(atomic_numbers)):
        raise MaceTorchConversionError(
            f"atomic_energies of shape {energies.shape} do not fit {num_heads} "
            f"heads and {len(atomic_numbers)} elements."
        )
    scales, shifts = np.ones(num_heads), np.zeros(num_heads)
    if "scale_shift" in model._modules:
        scale_shift = model.scale_shift
        for values, tensor in (
            (scales, scale_shift.scale),
            (shifts, scale_shift.shift),
        ):
            values[:] = np.broadcast_to(
                np.atleast_1d(tensor.detach().double().numpy()), num_heads
            )
    if scales[0] <= 0:
        raise MaceTorchConversionError(
            f"a non-positive energy scale ({scales[0]}) is not supported."
        )
    energies = energies + (shifts - shifts[0])[:, None]
    maps = [
        {z: float(e0) for z, e0 in zip(atomic_numbers, row, strict=True)}
        for row in energies
    ]
    folded = bool(np.any(shifts != shifts[0]))
    source = "mace-torch model" + (
        " (other heads' energy shifts added)" if folded else ""
    )
    info = DatasetInfo(
        atomic_energies_map=maps if num_heads > 1 else maps[0],
        cutoff_distance_angstrom=r_max,
        avg_num_neighbors=avg_num_neighbors,
        scaling_mean=float(shifts[0]),
        scaling_stdev=float(scales[0]),
        dataset_name=tuple(heads) if num_heads > 1 else None,
        atomic_energies_source=source,
    )
    return info, tuple(float(scale / scales[0]) for scale in scales)
