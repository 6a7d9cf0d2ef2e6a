"""mlip 0.2's NequIP (``mlip.models.Nequip``, built on e3j) into our
:class:`~mlip_eqx.models.Nequip` with the 0.2 options: its config and its
parameters.

mlip 0.2 plans each layer from the irreps its input holds (our
``label_zero_irreps=False``) and divides its species-wise self-connection (its
``residual_block``) by sqrt(fan-in) only (our
``self_connection_fan_in_species=False``). Its linear maps are e3j's (mapped by
:mod:`mlip_eqx.models.convert.e3j_linear`); its embedding, radial MLP, gate and
readout compute what ours do.

Its convolution orders the messages otherwise than ours: the radial MLP's
outputs and ``linear_out``'s inputs are permuted (see
:mod:`mlip_eqx.models.convert.e3j_messages`).
"""

from collections.abc import Callable, Mapping
from typing import Any

from mlip_eqx.models.activations import ACTIVATIONS
from mlip_eqx.models.blocks.radial import RadialEnvelope
from mlip_eqx.models.convert.e3j_linear import add_e3j_linear
from mlip_eqx.models.convert.e3j_messages import (
    E3jMessageOrder,
    radial_output_kernel,
)
from mlip_eqx.models.convert.mlip_options import MlipOptions
from mlip_eqx.models.convert.mlip_tree import Assignments, MlipParams
from mlip_eqx.models.nequip import Nequip, NequipConfig
from mlip_eqx.models.nequip.layer import NequipLayer

_EMBEDDING = "params/NequipEmbeddingBlock_0/NodeEmbeddingBlock_0/embed/embedding"
_READOUT = "params/NequipMultiHeadReadoutBlock_0/MultiHeadReadoutBlock_0/ReadoutBlock"

# mlip 0.2's NequIP options that ours lacks, with the one value ours computes.
_FIXED = {
    "predict_partial_charges": False,
    "use_coulomb_term": False,
    "use_total_charge_embedding": False,
}
# Options without effect on the function computed: the species count is the
# dataset's (deprecated option), the embedding's activation acts only with the
# charge embedding, scatter determinism changes the summation order only.
_IGNORED = ("num_species", "embed_activation", "deterministic_scatter_ops")
_NAMES = tuple(sorted(ACTIVATIONS))
# mlip's option -> ours, where only the name differs.
_RENAMED = {
    "num_layers": "num_layers",
    "target_irreps": "node_irreps",
    "l_max": "l_max",
    "num_rbf": "num_bessel",
    "radial_envelope": "radial_envelope",
    "radial_mlp_activation": "radial_net_nonlinearity",
    "radial_mlp_variance_scale": "scalar_mlp_std",
    "num_readout_heads": "num_readout_heads",
    "avg_num_neighbors": "avg_num_neighbors",
    "use_residual_connection": "use_residual_connection",
}


def nequip_v2_config(values: Mapping[str, Any]) -> NequipConfig:
    """Our NequIP config of mlip 0.2's (its ``hyperparams.json`` "config").

    Args:
        values: mlip's config options (those absent take mlip's defaults).

    Returns:
        The config with mlip 0.2's architecture options.

    Raises:
        ValueError: Naming an option (and its value) that ours cannot compute, or
            options it does not know.
    """
    options = MlipOptions("NequIP", values, _FIXED, _IGNORED)
    values = options.values
    ours: dict[str, Any] = {
        "label_zero_irreps": False,
        "self_connection_fan_in_species": False,
    }
    if not values.pop("add_atomic_energies", True):
        ours["atomic_energies"] = "zero"
    if "radial_mlp_hidden" in values:
        hidden = list(values.pop("radial_mlp_hidden"))
        if not hidden or len(set(hidden)) != 1:
            supported = "at least one layer, all of the same width"
            raise options.unsupported("radial_mlp_hidden", hidden, supported)
        ours["radial_net_n_hidden"] = hidden[0]
        ours["radial_net_n_layers"] = len(hidden)
    if "gate_nonlinearities" in values:
        gates = dict(values.pop("gate_nonlinearities"))
        if set(gates) != {"e", "o"} or not set(gates.values()) <= set(ACTIVATIONS):
            supported = f"'e' and 'o', each one of {_NAMES}"
            raise options.unsupported("gate_nonlinearities", gates, supported)
        ours["gate_even_activation"] = gates["e"]
        ours["gate_odd_activation"] = gates["o"]
    options.check_choices(
        {
            "radial_mlp_activation": _NAMES,
            "radial_envelope": RadialEnvelope.__args__,
        }
    )
    return NequipConfig(**ours, **options.renamed(_RENAMED))


def nequip_from_mlip_v2_params(network: Nequip, params: Mapping) -> Nequip:
    """``network`` with the parameters of mlip 0.2's NequIP of the same config.

    Every nonempty array of mlip's lands entry by entry in ours (the message maps
    permuted, see the module's docstring), so that the network computes mlip's
    function.

    Args:
        network: Our NequIP of the converted config (``nequip_v2_config``) and
            the same elements; its arrays are replaced.
        params: mlip's network parameters as flax stores them, ``{"params":
            {"NequipLayer_0": {...}, ...}}`` (in an mlip ``ForceField``'s
            parameters, ``{"params": params["params"]["mlip_network"]}``).

    Returns:
        The network with mlip's weights, in the dtype of ours.

    Raises:
        ValueError: If the network lacks mlip 0.2's options, or a parameter is
            missing, unexpected or of the wrong shape (the message names it).
    """
    config = network.config
    if config.label_zero_irreps or config.self_connection_fan_in_species:
        raise ValueError(
            "mlip 0.2's NequIP needs label_zero_irreps=False and "
            "self_connection_fan_in_species=False"
        )
    mlip = MlipParams(params)
    assignments = Assignments()
    assignments.add(lambda n: n.embedding, _EMBEDDING, mlip.take(_EMBEDDING))
    for index, layer in enumerate(network.layers):
        _add_layer(assignments, mlip, index, layer, config.l_max)
    for head, readout in enumerate(network.readouts):
        for module, name in (("Linear_0", "hidden"), ("Linear_1", "output")):
            add_e3j_linear(
                assignments,
                mlip,
                _readout_linear(head, name),
                getattr(readout, name),
                f"{_READOUT}_{head}/{module}",
            )
    mlip.check_all_taken()
    return assignments.apply(network)


def _readout_linear(head: int, name: str) -> Callable:
    """Where a readout head's linear map ``name`` is in the network."""
    return lambda n: getattr(n.readouts[head], name)


def _add_layer(
    assignments: Assignments,
    mlip: MlipParams,
    index: int,
    layer: NequipLayer,
    l_max: int,
) -> None:
    """The assignments of one layer (``NequipLayer_<index>``)."""
    prefix = f"params/NequipLayer_{index}"
    convolution = f"{prefix}/convolution_block"

    def at(name: str) -> Callable:
        return lambda n: getattr(n.layers[index], name)

    if layer.self_connection is not None:
        module = f"{prefix}/residual_block"
        add_e3j_linear(
            assignments, mlip, at("self_connection"), layer.self_connection, module
        )
    add_e3j_linear(
        assignments, mlip, at("linear_in"), layer.linear_in, f"{convolution}/linear_in"
    )
    irreps = layer.irreps
    order = E3jMessageOrder(
        irreps.nonzero_in, irreps.gate_in, irreps.radial_paths, l_max
    )
    rows = order.linear_out_rows(layer.couplings)
    add_e3j_linear(
        assignments,
        mlip,
        at("linear_out"),
        layer.linear_out,
        f"{convolution}/linear_out",
        row_order=rows,
    )
    num_weights = len(layer.radial_mlp.weights)
    for k in range(num_weights):
        name = f"{convolution}/radial_mlp/layers_{k}/kernel"
        kernel = mlip.take(name)
        if k == num_weights - 1:
            kernel = radial_output_kernel(kernel, name, order)
        assignments.add(
            lambda n, k=k: n.layers[index].radial_mlp.weights[k], name, kernel
        )
