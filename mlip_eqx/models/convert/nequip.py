"""mlip's NequIP parameters (its ``models_v1.Nequip``, version 0.1's network, also
in mlip 0.2.5) into our :class:`~mlip_eqx.models.Nequip`."""

import re
from collections.abc import Callable, Mapping

import e3nn_jax as e3nn
import numpy as np

from mlip_eqx.models.blocks.linear import EquivariantLinear
from mlip_eqx.models.convert.mlip_tree import Assignments, MlipParams, output_block
from mlip_eqx.models.nequip import Nequip
from mlip_eqx.models.nequip.irreps import LayerIrreps
from mlip_eqx.models.nequip.layer import NequipLayer

# e3nn-jax's names of a Linear's and a tensor product's weights: "w[i_in,i_out]
# 16x0e,32x0e" and "w[i_in,0,i_out] 16x0e,3x0e,32x0e" (the second input is the
# species one-hot).
_LINEAR = re.compile(r"w\[(\d+),(\d+)\] (\d+)x(\d+[eo]),(\d+)x(\d+[eo])")
_SPECIES_PRODUCT = re.compile(
    r"w\[(\d+),0,(\d+)\] (\d+)x(\d+[eo]),(\d+)x0e,(\d+)x(\d+[eo])"
)
_BLOCK = "params/NequipBlock_0"


def nequip_from_mlip_params(network: Nequip, params: Mapping) -> Nequip:
    """``network`` with the parameters of mlip's NequIP of the same config.

    mlip splits or orders some arrays differently (a linear map's output chunks,
    the rows of the messages, the species axis of the self-connection); every
    entry of mlip's arrays lands in exactly one entry of ours, so that the
    network gives mlip's node energies (``benchmarks/mlip_parity.py`` checks
    this against mlip 0.2.5 to 1e-15 eV in float64).

    Args:
        network: Our NequIP of the same config and elements (one readout head);
            its arrays are replaced.
        params: mlip's network parameters as flax stores them, ``{"params":
            {"NequipBlock_0": {...}}}`` (the result of ``network.init``; in an
            mlip ``ForceField``'s parameters, ``{"params":
            params["params"]["mlip_network"]}``).

    Returns:
        The network with mlip's weights, in the dtype of ours.

    Raises:
        ValueError: If a parameter is missing, unexpected or of the wrong shape
            (the message names it), or the network has several readout heads.
    """
    if len(network.readouts) != 1:
        raise ValueError(
            f"mlip's NequIP has one readout head; this network has "
            f"{len(network.readouts)}"
        )
    mlip = MlipParams(params)
    assignments = Assignments()
    assignments.add(lambda n: n.embedding, *mlip.take_only(f"{_BLOCK}/Linear_0"))
    for index, layer in enumerate(network.layers):
        _add_layer(assignments, mlip, index, layer)
    for module, name in (("Linear_1", "hidden"), ("Linear_2", "output")):
        assignments.add(
            lambda n, name=name: getattr(n.readouts[0], name).weights[0],
            *mlip.take_only(f"{_BLOCK}/{module}"),
        )
    mlip.check_all_taken()
    return assignments.apply(network)


def _add_layer(
    assignments: Assignments, mlip: MlipParams, index: int, layer: NequipLayer
) -> None:
    """The assignments of one layer (``NequipLayer_<index>``)."""
    prefix = f"{_BLOCK}/NequipLayer_{index}"

    def at(name: str) -> Callable:
        return lambda n: getattr(n.layers[index], name)

    add_linear(
        assignments,
        mlip,
        at("self_connection"),
        layer.self_connection,
        f"{prefix}/FullyConnectedTensorProduct_0",
        layer.irreps.gate_in,
        pattern=_SPECIES_PRODUCT,
        species_axis=True,
    )
    add_linear(
        assignments,
        mlip,
        at("linear_in"),
        layer.linear_in,
        f"{prefix}/Linear_0",
        layer.irreps.labelled_in,
    )
    add_linear(
        assignments,
        mlip,
        at("linear_out"),
        layer.linear_out,
        f"{prefix}/Linear_1",
        mlip_gate_chunks(layer.irreps),
        row_order=message_rows(layer),
    )
    for k in range(len(layer.radial_mlp.weights)):
        name = f"{prefix}/MLP_0/Dense_{k}/kernel"
        assignments.add(
            lambda n, k=k: n.layers[index].radial_mlp.weights[k], name, mlip.take(name)
        )


def add_linear(
    assignments: Assignments,
    mlip: MlipParams,
    where: Callable,
    linear: EquivariantLinear,
    module: str,
    mlip_chunks_out: e3nn.Irreps,
    *,
    pattern: re.Pattern = _LINEAR,
    species_axis: bool = False,
    row_order: dict[str, np.ndarray] | None = None,
    scale: float = 1.0,
) -> None:
    """The assignments of an EquivariantLinear from mlip's blocks of ``module``.

    mlip's output chunks of one irrep are joined into one axis (mlip may split
    what we simplify) before ours are cut from it.

    Args:
        assignments: Where the assignments go.
        mlip: mlip's parameters.
        where: Our linear map in the network.
        linear: That linear map.
        module: mlip's module path.
        mlip_chunks_out: mlip's output irreps (chunk ``k`` is named ``w[i,k]``).
        pattern: The regular expression of the weights' names; group 2 is the
            output chunk, group 4 the input irrep.
        species_axis: mlip's arrays are [mul_in, num_species, mul_out] (a tensor
            product with the species one-hot); ours [num_species, mul_in, mul_out].
        row_order: For each input irrep, mlip's row of each of our rows.
        scale: Factor of every weight (where our normalisation differs).
    """
    blocks: dict[tuple[str, int], str] = {}
    for name in mlip.names_under(module):
        match = pattern.fullmatch(name[len(module) + 1 :])
        if match is None:
            raise ValueError(f"unexpected mlip parameter {name!r}")
        blocks[match.group(4), int(match.group(2))] = name
    instructions = e3nn.FunctionalLinear(linear.irreps_in, linear.irreps_out)
    for index, instruction in enumerate(instructions.instructions):
        irrep = str(linear.irreps_in[instruction.i_in].ir)
        names = []
        for k, (_, chunk_irrep) in enumerate(mlip_chunks_out):
            if str(chunk_irrep) == irrep:
                if (irrep, k) not in blocks:
                    raise ValueError(
                        f"mlip parameter w[*,{k}] *x{irrep},... of "
                        f"{module!r} is missing"
                    )
                names.append(blocks[irrep, k])
        full = np.concatenate([mlip.take(name) for name in names], axis=-1)
        if species_axis:
            full = np.transpose(full, (1, 0, 2))
        ours = [mul for mul, ir in linear.irreps_out if str(ir) == irrep]
        if full.shape[-1] != sum(ours):
            raise ValueError(
                f"mlip's {module!r} has {full.shape[-1]} output "
                f"channels of {irrep}; ours {sum(ours)}"
            )
        block = output_block(
            full, linear.irreps_out, instruction.i_out, irrep, row_order, module
        )
        assignments.add(
            lambda n, index=index: where(n).weights[index],
            " + ".join(names),
            block.astype(np.float64) * scale,  # float64: scaled without rounding
        )


def message_rows(layer: NequipLayer) -> dict[str, np.ndarray]:
    """For each message irrep of ``layer``, mlip's row of each of our rows of
    ``linear_out``: mlip orders them by radial path, ours by coupling."""
    theirs: dict[str, dict] = {}
    for path in layer.irreps.radial_paths:
        if path.source in layer.irreps.nonzero_in:
            rows = theirs.setdefault(str(path.target), {})
            start = len(rows)
            for channel in range(path.num_channels):
                rows[path.source, path.degree, channel] = start + channel
    order: dict[str, list] = {}
    for coupling in layer.couplings:
        for target, (source, degree) in zip(
            coupling.path_irreps, coupling.path_sources
        ):
            order.setdefault(str(target), []).extend(
                theirs[str(target)][source, degree, channel]
                for channel in range(coupling.num_channels)
            )
    return {irrep: np.asarray(rows) for irrep, rows in order.items()}


def mlip_gate_chunks(irreps: LayerIrreps) -> e3nn.Irreps:
    """mlip's (unsimplified) output chunks of the linear map before the gate:
    the scalars, one gate chunk per non-scalar, the non-scalars."""
    scalars = [(mul, ir) for mul, ir in irreps.labelled_out if ir.l == 0]
    nonscalars = [(mul, ir) for mul, ir in irreps.labelled_out if ir.l > 0]
    gates = [(mul, e3nn.Irrep("0e")) for mul, _ in nonscalars]
    return e3nn.Irreps(scalars + gates + nonscalars)
