"""mlip 0.2's NequIP (``mlip.models.Nequip``, built on e3j) into our
:class:`~mlip_eqx.models.Nequip` with the 0.2 options: its config and its
parameters.

mlip 0.2 plans each layer from the irreps its input holds (our
``label_zero_irreps=False``) and divides its species-wise self-connection (its
``residual_block``) by sqrt(fan-in) only (our
``self_connection_fan_in_species=False``). Its linear maps are e3j's (mapped by
:mod:`mlip_eqx.models.convert.e3j_linear`); its embedding, radial MLP, gate and
readout compute what ours do.

Its convolution factors the sender multiplicities by their greatest common
divisor g (e3j's "trailing channels" layout, mlip's default): channel k of an
irrep of multiplicity m is sub-channel k mod (m / g) of group k // (m / g). The
messages of each output irrep are ordered group-major, then by path slot (sender
irrep, harmonic degree, sub-channel: the order in which e3j generates them, then
sorted stably by output irrep); the radial MLP's outputs are slot-major, group
minor. Ours are ordered per radial path and channel, so the two maps are permuted
here (``_MessageOrder``).
"""

import math
from collections.abc import Callable, Mapping
from typing import Any

import e3nn_jax as e3nn
import numpy as np

from mlip_eqx.models.activations import ACTIVATIONS
from mlip_eqx.models.blocks.radial import RadialEnvelope
from mlip_eqx.models.convert.e3j_linear import add_e3j_linear
from mlip_eqx.models.convert.mlip_tree import Assignments, MlipParams
from mlip_eqx.models.nequip import Nequip, NequipConfig
from mlip_eqx.models.nequip.irreps import LayerIrreps, harmonic_irrep
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
    values = dict(values)
    for option, supported in _FIXED.items():
        value = values.pop(option, supported)
        if value != supported:
            raise ValueError(_unsupported(option, value, repr(supported)))
    for option in _IGNORED:
        values.pop(option, None)
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
            raise ValueError(_unsupported("radial_mlp_hidden", hidden, supported))
        ours["radial_net_n_hidden"] = hidden[0]
        ours["radial_net_n_layers"] = len(hidden)
    if "gate_nonlinearities" in values:
        gates = dict(values.pop("gate_nonlinearities"))
        if set(gates) != {"e", "o"} or not set(gates.values()) <= set(ACTIVATIONS):
            supported = f"'e' and 'o', each one of {_NAMES}"
            raise ValueError(_unsupported("gate_nonlinearities", gates, supported))
        ours["gate_even_activation"] = gates["e"]
        ours["gate_odd_activation"] = gates["o"]
    for option, allowed in (
        ("radial_mlp_activation", _NAMES),
        ("radial_envelope", RadialEnvelope.__args__),
    ):
        if option in values and values[option] not in allowed:
            raise ValueError(_unsupported(option, values[option], str(allowed)))
    unknown = sorted(set(values) - set(_RENAMED))
    if unknown:
        raise ValueError(f"NequIP config options {unknown} are not known")
    ours |= {_RENAMED[option]: value for option, value in values.items()}
    return NequipConfig(**ours)


def _unsupported(option: str, value: Any, supported: str) -> str:
    return f"the NequIP option {option}={value!r} is not supported (only {supported})"


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
    order = _MessageOrder(layer.irreps, l_max)
    rows = order.linear_out_rows(layer)
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
            columns = order.radial_columns()
            if kernel.ndim != 2 or kernel.shape[1] != len(columns):
                raise ValueError(
                    f"mlip parameter {name!r} has shape {kernel.shape}; "
                    f"expected {len(columns)} outputs"
                )
            if sorted(columns) != list(range(len(columns))):
                raise ValueError(f"{name}: mlip's outputs and ours differ")
            kernel = kernel[:, columns]
        assignments.add(
            lambda n, k=k: n.layers[index].radial_mlp.weights[k], name, kernel
        )


class _MessageOrder:
    """Where mlip's convolution puts each (radial path, channel) of a layer: its
    radial MLP output column and its row of ``linear_out``'s input."""

    def __init__(self, irreps: LayerIrreps, l_max: int):
        """Args:
        irreps: The layer's irreps (planned without zero irreps).
        l_max: Highest degree of the harmonics.
        """
        self.groups = math.gcd(*(mul for mul, _ in irreps.nonzero_in))
        self.multiplicity = {ir: mul for mul, ir in irreps.nonzero_in}
        slots: dict[e3nn.Irrep, list[tuple[e3nn.Irrep, int, int]]] = {}
        for mul, source in irreps.nonzero_in:
            for degree in range(l_max + 1):
                for target in source * harmonic_irrep(degree):
                    if target in irreps.gate_in:
                        slots.setdefault(target, []).extend(
                            (source, degree, s) for s in range(mul // self.groups)
                        )
        self.slots = {target: {slot: t for t, slot in enumerate(slots[target])}
                      for target in slots}  # fmt: skip
        self.offsets, offset = {}, 0
        for target in sorted(slots):
            self.offsets[target] = offset
            offset += len(slots[target])
        self.irreps = irreps

    def _slot(self, source: e3nn.Irrep, degree: int, target: e3nn.Irrep, k: int):
        """(group, slot among the target's messages) of channel ``k``."""
        group, sub = divmod(k, self.multiplicity[source] // self.groups)
        return group, self.slots[target][source, degree, sub]

    def radial_columns(self) -> np.ndarray:
        """mlip's column of the radial MLP for each of our columns (our columns
        follow ``irreps.radial_paths``, channel-minor)."""
        columns = []
        for path in self.irreps.radial_paths:
            for k in range(path.num_channels):
                group, slot = self._slot(path.source, path.degree, path.target, k)
                columns.append((self.offsets[path.target] + slot) * self.groups + group)
        return np.asarray(columns)

    def linear_out_rows(self, layer: NequipLayer) -> dict[str, np.ndarray]:
        """For each message irrep, mlip's input row of ``linear_out`` for each of
        ours (ours: coupling after coupling, path-major, channel-minor)."""
        rows: dict[str, list[int]] = {}
        for coupling in layer.couplings:
            for target, (source, degree) in zip(
                coupling.path_irreps, coupling.path_sources
            ):
                num_slots = len(self.slots[target])
                for k in range(coupling.num_channels):
                    group, slot = self._slot(source, degree, target, k)
                    rows.setdefault(str(target), []).append(group * num_slots + slot)
        return {irrep: np.asarray(order) for irrep, order in rows.items()}
