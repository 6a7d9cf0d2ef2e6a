"""mlip 0.2's MACE (``mlip.models.Mace``, built on e3j) into our
:class:`~mlip_eqx.models.Mace`: its config and its parameters.

Module by module mlip 0.2's MACE computes what ours does: its linear and
species-wise maps are e3j's (mapped by :mod:`mlip_eqx.models.convert.e3j_linear`),
its convolution orders the messages otherwise (permuted, see
:mod:`mlip_eqx.models.convert.e3j_messages`) and takes the harmonics of the
vector from sender to receiver, ours of the reverse: the radial weights of the
paths through harmonics of odd degree change sign, so that the node features are
mlip's (the energy, invariant under inversion, would be the same without). Its
symmetric contraction on e3j (the default backend) is mapped by least squares
(:mod:`mlip_eqx.models.convert.e3j_power`); its e3nn backends hold our weights.
It normalises with the dataset's neighbour count and shortest edge length,
whatever its config says. With pseudotensors, mlip's interactions also output the
irreps no message reaches (zero), which its first species-wise map and its
contraction take: their weights there act on zeros and are dropped. Refused by
name: the options ours lacks (node gating, soft normalisation, Gaunt tensor
products, a radial MLP activation other than ``activation``, non-scalar hidden
readout irreps, partial charges and the charge embedding) and pseudotensors with
the e3nn backends (whose bases then span mlip's zero irreps too).
"""

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

import e3nn_jax as e3nn

from mlip_eqx.models.activations import ACTIVATIONS
from mlip_eqx.models.blocks.radial import RadialEnvelope
from mlip_eqx.models.blocks.readouts import LinearReadout
from mlip_eqx.models.convert.e3j_linear import add_e3j_linear
from mlip_eqx.models.convert.e3j_messages import (
    E3jMessageOrder,
    coupling_paths,
    radial_output_kernel,
)
from mlip_eqx.models.convert.e3j_power import contraction_weights_from_e3j
from mlip_eqx.models.convert.mlip_options import MlipOptions
from mlip_eqx.models.convert.mlip_tree import Assignments, MlipParams, layer_part
from mlip_eqx.models.mace import Mace, MaceConfig
from mlip_eqx.models.mace.network import MaceLayer

_WEIGHT = re.compile(r"weight\d+_(\d+)_(-?1)")
_EMBEDDING = "params/embedding_block/node_embedding_block/embed/embedding"

# mlip 0.2's MACE options that ours lacks, with the one value ours computes.
_FIXED = {
    "predict_partial_charges": False,
    "use_coulomb_term": False,
    "use_total_charge_embedding": False,
    "gate_nodes": False,
    "soft_normalization": None,
    "use_gaunt_tp_message_passing": False,
}
# Options without effect on the function computed: mlip 0.2's MACE takes the
# neighbour count and the shortest edge length from the dataset, the species count
# is the dataset's (deprecated option), the embedding's activation acts only with
# the charge embedding, scatter determinism changes the summation order only.
_IGNORED = (
    "avg_num_neighbors",
    "avg_r_min",
    "num_species",
    "embed_activation",
    "deterministic_scatter_ops",
)
_NAMES = tuple(sorted(ACTIVATIONS))
# The contraction backends ours computes -> our symmetric_tensor_product_basis.
_BACKENDS = {"e3j": False, "e3nn": False, "e3nn_symmetric": True}
# mlip's option -> ours, where only the name differs.
_RENAMED = {
    "num_layers": "num_layers",
    "num_channels": "num_channels",
    "l_max": "l_max",
    "node_symmetry": "node_symmetry",
    "correlation": "correlation",
    "num_readout_heads": "num_readout_heads",
    "num_rbf": "num_bessel",
    "radial_envelope": "radial_envelope",
    "activation": "activation",
    "residual_connection_first_layer": "first_layer_residual",
    "include_pseudotensors": "include_pseudotensors",
}


def mace_v2_config(values: Mapping[str, Any]) -> MaceConfig:
    """Our MACE config of mlip 0.2's (its ``hyperparams.json`` "config"): with
    its contraction backend "e3nn_symmetric", our symmetric tensor basis.

    Args:
        values: mlip's config options (those absent take mlip's defaults).

    Returns:
        The config.

    Raises:
        ValueError: Naming an option (and its value) that ours cannot compute, or
            options it does not know.
    """
    options = MlipOptions("MACE", values, _FIXED, _IGNORED)
    values = options.values
    ours: dict[str, Any] = {}
    if not values.pop("add_atomic_energies", True):
        ours["atomic_energies"] = "zero"
    options.check_choices(
        {
            "symmetric_contraction_backend": tuple(_BACKENDS),
            "activation": _NAMES,
            "radial_envelope": RadialEnvelope.__args__,
        }
    )
    backend = values.pop("symmetric_contraction_backend", "e3j")
    ours["symmetric_tensor_product_basis"] = _BACKENDS[backend]
    if values.get("include_pseudotensors") and backend != "e3j":
        # mlip's e3nn bases then also span its identically zero irreps.
        supported = "False with the e3nn contraction backends"
        raise options.unsupported("include_pseudotensors", True, supported)
    activation = values.get("activation", "silu")
    radial_activation = values.pop("radial_mlp_activation", "silu")
    if radial_activation != activation:
        supported = f"that of activation, {activation!r}"
        raise options.unsupported("radial_mlp_activation", radial_activation, supported)
    if "radial_mlp_hidden" in values:
        ours["radial_mlp_hidden"] = tuple(values.pop("radial_mlp_hidden"))
    if "readout_irreps" in values:
        readout = tuple(str(irreps) for irreps in values.pop("readout_irreps"))
        if len(readout) != 2 or any(ir.l > 0 for _, ir in e3nn.Irreps(readout[0])):
            supported = "a hidden and an output irreps, the hidden scalars only"
            raise options.unsupported("readout_irreps", list(readout), supported)
        ours["readout_irreps"] = readout
    return MaceConfig(**ours, **options.renamed(_RENAMED))


def mace_from_mlip_v2_params(network: Mace, params: Mapping) -> Mace:
    """``network`` with the parameters of mlip 0.2's MACE of the same config.

    Args:
        network: Our MACE of the converted config (``mace_v2_config``) and the
            same elements; its arrays are replaced.
        params: mlip's network parameters as flax stores them, ``{"params":
            {"layers_0": {...}, ...}}``.

    Returns:
        The network with mlip's weights (the contraction's in our basis), in the
        dtype of ours.

    Raises:
        ValueError: If the network has options mlip 0.2's MACE lacks, or a
            parameter is missing, unexpected or of the wrong shape (the message
            names it).
    """
    config = network.config
    if (
        config.density_normalisation
        or config.pair_repulsion
        or config.distance_transform != "none"
        or not config.normalise_radial_embedding
    ):
        raise ValueError("the network has options that mlip 0.2's MACE lacks")
    mlip = MlipParams(params)
    assignments = Assignments()
    assignments.add(lambda n: n.embedding, _EMBEDDING, mlip.take(_EMBEDDING))
    for index, layer in enumerate(network.layers):
        _add_layer(assignments, mlip, index, layer, config)
    mlip.check_all_taken()
    return assignments.apply(network)


def _add_layer(
    assignments: Assignments,
    mlip: MlipParams,
    index: int,
    layer: MaceLayer,
    config: MaceConfig,
) -> None:
    """The assignments of one layer (``layers_<index>``)."""
    prefix = f"params/layers_{index}"
    interaction = layer.interaction

    def linear(names: tuple[str, ...], module: str, **options) -> None:
        linear_map = functools.reduce(getattr, names, layer)
        where = layer_part(index, *names)
        add_e3j_linear(assignments, mlip, where, linear_map, module, **options)

    block = f"{prefix}/interaction_block"
    linear(("interaction", "linear_up"), f"{block}/linear_in")
    coupling = interaction.coupling
    order = E3jMessageOrder(
        coupling.source_irreps,
        interaction.target_irreps,
        coupling_paths(coupling),
        config.l_max,
    )
    linear(
        ("interaction", "linear_down"),
        f"{block}/linear_out",
        row_order=order.linear_out_rows([coupling]),
    )
    num_weights = len(interaction.radial_mlp.weights)
    for k in range(num_weights):
        name = f"{block}/radial_mlp/layers_{k}/kernel"
        kernel = mlip.take(name)
        if k == num_weights - 1:
            kernel = radial_output_kernel(kernel, name, order, flip_odd=True)
        assignments.add(
            lambda n, k=k: n.layers[index].interaction.radial_mlp.weights[k],
            name,
            kernel,
        )
    if layer.has_residual:
        linear(("species_linear",), f"{prefix}/residual_block")
    else:
        # mlip's map acts on all its interaction irreps, also those that no
        # message reaches (zero; only with pseudotensors); ours on the others.
        reached = {str(ir) for _, ir in layer.species_linear.irreps_in}
        zero = {str(ir) for _, ir in mlip_interaction_irreps(config)} - reached
        linear(
            ("species_linear",),
            f"{prefix}/linear_by_species_block",
            zero_inputs=frozenset(zero),
        )
    expansion = f"{prefix}/expansion_block"
    _add_contraction(assignments, mlip, index, layer, config, expansion)
    linear(("product_basis", "linear"), f"{expansion}/linear_block")
    for head, readout in enumerate(layer.readouts):
        module = f"{prefix}/readout_block/ReadoutBlock_{head}"
        if isinstance(readout, LinearReadout):
            names = (("linear", "Linear_0"),)
        else:
            names = (("hidden", "Linear_0"), ("output", "Linear_1"))
        for name, linear_module in names:
            target = _readout_linear(index, head, name)
            add_e3j_linear(
                assignments,
                mlip,
                target,
                getattr(readout, name),
                f"{module}/{linear_module}",
            )


def _readout_linear(index: int, head: int, name: str) -> Callable:
    """Where a readout head's linear map ``name`` is in the network."""
    return lambda n: getattr(n.layers[index].readouts[head], name)


def _add_contraction(
    assignments: Assignments,
    mlip: MlipParams,
    index: int,
    layer: MaceLayer,
    config: MaceConfig,
    expansion: str,
) -> None:
    """The symmetric contraction's weights (``expansion_block/
    symmetric_contraction``), mapped from e3j's or copied from e3nn's."""
    contraction = layer.product_basis.symmetric_contraction
    module = f"{expansion}/symmetric_contraction"
    names = mlip.names_under(module)
    e3j = f"{module}/LinearIndexwise_0/"
    if any(name.startswith(e3j) for name in names):
        source = mlip_interaction_irreps(config)
        is_last = index == config.num_layers - 1
        keep = e3nn.Irreps(
            "0e"
            if is_last
            else e3nn.Irreps.spherical_harmonics(config.resolved_node_symmetry)
        )
        weights = {}
        for name in names:
            ir = _e3j_weight_irrep(name, e3j)
            weights[str(ir)] = (name, mlip.take(name))
        ours = contraction_weights_from_e3j(contraction, source, keep, weights)
        missing = sorted(set(contraction.weights) - set(ours))
        if missing:
            raise ValueError(f"{module}: e3j's contraction has no {missing}")
        values = {
            key: (weights[key.split("_", 1)[1]][0], ours[key])
            for key in contraction.weights
        }
    else:
        values = {}
        for name in names:
            key = name[len(module) + 1 :]
            array = mlip.take(name)
            if key not in contraction.weights and array.size == 0:
                continue  # an irrep without paths of that order
            values[key] = (name, array)
    for key in contraction.weights:
        if key not in values:
            raise ValueError(f"mlip parameter {module}/{key} is missing")
    for key, (name, value) in values.items():
        if key not in contraction.weights:
            raise ValueError(f"unexpected mlip parameter {name!r}")
        assignments.add(
            lambda n, key=key: n.layers[
                index
            ].product_basis.symmetric_contraction.weights[key],
            name,
            value,
        )


def mlip_interaction_irreps(config: MaceConfig) -> e3nn.Irreps:
    """mlip's irreps of one channel of the interactions' outputs (the
    contraction's input), in its order; some are zero (no message reaches them)."""
    if config.include_pseudotensors:
        return e3nn.Irreps(e3nn.Irrep.iterator(config.l_max))
    return e3nn.Irreps.spherical_harmonics(config.l_max)


def _e3j_weight_irrep(name: str, module: str) -> e3nn.Irrep:
    """The irrep of e3j's weight ``name`` (``weight{i}_{l}_{p}``) of ``module``."""
    match = _WEIGHT.fullmatch(name[len(module) :])
    if match is None:
        raise ValueError(f"unexpected mlip parameter {name!r}")
    return e3nn.Irrep(int(match.group(1)), int(match.group(2)))
