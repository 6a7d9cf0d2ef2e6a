"""The weights of a mace-torch MACE in our :class:`~mlip_eqx.models.Mace`.

e3nn (torch) keeps a linear map's or tensor product's weights flat, one block
per instruction, and multiplies each path by a constant ``path_weight``; ours
keep one array per path and their own constants. Every block is read as the
effective matrix (weights times constants) of mace-torch, from which our
weights follow by dividing by our constants; rows and columns are reordered
where the two order the messages differently. The normalisation of the SiLU
(a sampled constant in e3nn, a quadrature in e3nn-jax) differs by about 1e-4;
the ratio is folded into the weights that follow each activation.
"""

from collections.abc import Callable
from typing import Any

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np

from mlip_eqx.models.activations import ACTIVATIONS
from mlip_eqx.models.blocks.linear import EquivariantLinear
from mlip_eqx.models.convert.mlip_tree import Assignments
from mlip_eqx.models.mace import Mace
from mlip_eqx.models.mace.network import MaceLayer

Blocks = dict[tuple[str, str], np.ndarray]


def mace_from_torch(
    network: Mace, model: Any, head_scales: tuple[float, ...], gate_scale: float
) -> Mace:
    """``network`` with the weights of the mace-torch model it was read from
    (see :func:`~mlip_eqx.models.convert.mace_torch.read_mace_torch_model`).

    Args:
        network: Our MACE of the model's config and DatasetInfo.
        model: The mace-torch ``MACE`` or ``ScaleShiftMACE``.
        head_scales: Factor of every head's readouts.
        gate_scale: e3nn's normalisation constant of the SiLU in the model.

    Returns:
        The network with the model's weights, in the dtype of ours.

    Raises:
        ValueError: If a block does not fit ours (naming mace-torch's module).
    """
    order = np.argsort(np.asarray(model.atomic_numbers))  # our species -> theirs
    with jax.ensure_compile_time_eval():
        ours = e3nn.normalize_function(ACTIVATIONS["silu"])(jnp.array(1.0))
        gate_ratio = gate_scale * float(ACTIVATIONS["silu"](1.0) / ours)
    assignments = Assignments("mace-torch")
    embedding = _linear_blocks(model.node_embedding.linear)[("0e", "0e")]
    assignments.add(
        lambda n: n.embedding,
        "node_embedding.linear",
        embedding[order] * network.num_species**0.5,
    )
    for index, layer in enumerate(network.layers):
        _add_layer(assignments, model, index, layer, order, head_scales, gate_ratio)
    return assignments.apply(network)


def _add_layer(
    assignments: Assignments,
    model: Any,
    index: int,
    layer: MaceLayer,
    order: np.ndarray,
    head_scales: tuple[float, ...],
    gate_ratio: float,
) -> None:
    """The assignments of one layer (mace-torch's interaction, product and
    readout of the same index)."""
    interaction = model.interactions[index]
    product = model.products[index]
    prefix = f"interactions.{index}"

    def at(path: Callable) -> Callable:
        return lambda n: path(n.layers[index])

    _add_linear(
        assignments,
        at(lambda layer: layer.interaction.linear_up),
        layer.interaction.linear_up,
        _linear_blocks(interaction.linear_up),
        f"{prefix}.linear_up",
    )
    mlp = interaction.conv_tp_weights
    num_mlp_layers = len(mlp.hs) - 1
    paths = _message_paths(layer, interaction.conv_tp)
    channels = layer.interaction.coupling.num_channels
    for k in range(num_mlp_layers):
        weight = getattr(mlp, f"layer{k}").weight.detach().double().numpy()
        if k > 0:
            weight = weight * gate_ratio
        if k == num_mlp_layers - 1:
            columns = weight.reshape(weight.shape[0], -1, channels)
            weight = np.concatenate(
                [columns[:, path] * factor for path, factor, _ in paths], axis=1
            )
        assignments.add(
            at(lambda layer, k=k: layer.interaction.radial_mlp.weights[k]),
            f"{prefix}.conv_tp_weights.layer{k}",
            weight,
        )
    if layer.interaction.density_mlp is not None:
        assignments.add(
            at(lambda layer: layer.interaction.density_mlp.weights[0]),
            f"{prefix}.density_fn.layer0",
            interaction.density_fn.layer0.weight.detach().double().numpy(),
        )
    down = _linear_blocks(interaction.linear)
    path_irreps = layer.interaction.coupling.path_irreps
    down = {
        key: _reordered_rows(matrix, key[0], path_irreps, paths, channels)
        for key, matrix in down.items()
    }
    _add_linear(
        assignments,
        at(lambda layer: layer.interaction.linear_down),
        layer.interaction.linear_down,
        down,
        f"{prefix}.linear",
    )
    skip = {
        key: block[:, order]
        for key, block in _species_blocks(interaction.skip_tp).items()
    }
    _add_linear(
        assignments,
        at(lambda layer: layer.species_linear),
        layer.species_linear,
        skip,
        f"{prefix}.skip_tp",
        species=True,
    )
    _add_contraction(assignments, at, layer, product, index, order)
    _add_linear(
        assignments,
        at(lambda layer: layer.product_basis.linear),
        layer.product_basis.linear,
        _linear_blocks(product.linear),
        f"products.{index}.linear",
    )
    _add_readouts(
        assignments, at, layer, model.readouts[index], index, head_scales, gate_ratio
    )


def _message_paths(layer: MaceLayer, conv_tp: Any) -> list[tuple[int, float, int]]:
    """For each of our message paths: mace-torch's instruction index, the factor
    of its weights, and the position of its output among mace-torch's chunks of
    the same irrep."""
    coupling = layer.interaction.coupling
    torch_paths = {}
    chunk_position = {}
    seen: dict[str, int] = {}
    for i_out, (_, ir) in enumerate(conv_tp.irreps_out):
        chunk_position[i_out] = seen.get(str(ir), 0)
        seen[str(ir)] = chunk_position[i_out] + 1
    for number, instruction in enumerate(conv_tp.instructions):
        source = conv_tp.irreps_in1[instruction.i_in1].ir
        degree = conv_tp.irreps_in2[instruction.i_in2].ir.l
        output = conv_tp.irreps_out[instruction.i_out].ir
        if instruction.connection_mode != "uvu" or instruction.path_shape[1] != 1:
            raise ValueError(f"mace-torch message path {instruction} is not 'uvu'")
        torch_paths[(str(source), degree, str(output))] = (
            number,
            instruction.path_weight / output.dim**0.5,
            chunk_position[instruction.i_out],
        )
    paths = []
    for (source, degree), output in zip(coupling.path_sources, coupling.path_irreps):
        key = (str(source), degree, str(output))
        if key not in torch_paths:
            raise ValueError(f"mace-torch has no message path {key}")
        paths.append(torch_paths.pop(key))
    if torch_paths:
        raise ValueError(f"mace-torch message paths {sorted(torch_paths)} not ours")
    return paths


def _reordered_rows(
    matrix: np.ndarray,
    ir: str,
    path_irreps: tuple[e3nn.Irrep, ...],
    paths: list[tuple[int, float, int]],
    channels: int,
) -> np.ndarray:
    """The rows of mace-torch's map of the messages of irrep ``ir`` (one chunk of
    ``channels`` rows per path, in its order) in ours (path-major, then
    channel)."""
    chunks = matrix.reshape(-1, channels, matrix.shape[-1])
    rows = [
        chunks[position]
        for output, (_, _, position) in zip(path_irreps, paths)
        if str(output) == ir
    ]
    return np.concatenate(rows)


def _add_contraction(
    assignments: Assignments,
    at: Callable,
    layer: MaceLayer,
    product: Any,
    index: int,
    order: np.ndarray,
) -> None:
    """The symmetric contraction's weights, from mace-torch's ``U`` matrices."""
    ours = layer.product_basis.symmetric_contraction
    torch_contraction = product.symmetric_contractions
    correlation = ours.correlation
    for number, (_, ir) in enumerate(torch_contraction.irreps_out):
        contraction = torch_contraction.contractions[number]
        name = f"products.{index}.symmetric_contractions.contractions.{number}"
        for nu in range(1, correlation + 1):
            basis = contraction.U_tensors(nu).detach().double().numpy()
            basis = basis[..., None] if ir.l == 0 else np.moveaxis(basis, 0, -1)
            if nu == correlation:
                weights, label = contraction.weights_max, "weights_max"
            else:
                label = f"weights.{correlation - 1 - nu}"
                weights = contraction.weights[correlation - 1 - nu]
            weights = weights.detach().double().numpy()[order]
            key = f"w{nu}_{ir}"
            if key not in ours.weights:
                if np.any(basis != 0.0) and np.any(weights != 0.0):
                    raise ValueError(f"mace-torch {name}.{label} has no counterpart")
                continue
            assignments.add(
                at(
                    lambda layer, key=key: (
                        layer.product_basis.symmetric_contraction.weights[key]
                    )
                ),
                f"{name}.{label}",
                ours.equivalent_weights(nu, str(ir), basis, weights),
            )


def _add_readouts(
    assignments: Assignments,
    at: Callable,
    layer: MaceLayer,
    readout: Any,
    index: int,
    head_scales: tuple[float, ...],
    gate_ratio: float,
) -> None:
    """Every head's readout of the layer, from mace-torch's one readout with an
    output (and, in the last layer, hidden features) per head."""
    name = f"readouts.{index}"
    if "linear_1" not in readout._modules:
        matrix = _linear_blocks(readout.linear)[("0e", "0e")]
        for head, ours in enumerate(layer.readouts):
            assignments.add(
                at(lambda layer, head=head: layer.readouts[head].linear.weights[0]),
                f"{name}.linear",
                matrix[:, head : head + 1]
                * head_scales[head]
                / _path_weight(ours.linear),
            )
        return
    hidden = _linear_blocks(readout.linear_1)[("0e", "0e")]
    output = _linear_blocks(readout.linear_2)[("0e", "0e")]
    width = hidden.shape[1] // len(layer.readouts)
    for head, ours in enumerate(layer.readouts):
        rows = slice(head * width, (head + 1) * width)
        assignments.add(
            at(lambda layer, head=head: layer.readouts[head].hidden.weights[0]),
            f"{name}.linear_1",
            hidden[:, rows] / _path_weight(ours.hidden),
        )
        assignments.add(
            at(lambda layer, head=head: layer.readouts[head].output.weights[0]),
            f"{name}.linear_2",
            output[rows, head : head + 1]
            * (gate_ratio * head_scales[head] / _path_weight(ours.output)),
        )


def _path_weight(linear: EquivariantLinear) -> float:
    """The constant of a linear map of ours with one path."""
    if len(linear._paths) != 1:
        raise ValueError(f"expected one path, got {len(linear._paths)}")
    return linear._paths[0][2]


def _add_linear(
    assignments: Assignments,
    where: Callable,
    linear: EquivariantLinear,
    blocks: Blocks,
    name: str,
    species: bool = False,
) -> None:
    """Our linear map's weights from mace-torch's effective blocks (species on
    the second axis of a block when ``species``)."""
    used = set()
    for path, ((i_in, i_out, path_weight), _) in enumerate(
        zip(linear._paths, linear.weights)
    ):
        key = (str(linear.irreps_in[i_in].ir), str(linear.irreps_out[i_out].ir))
        if key not in blocks:
            raise ValueError(f"mace-torch {name} has no path {key}")
        used.add(key)
        block = blocks[key]
        if species:
            block = np.transpose(block, (1, 0, 2))
        assignments.add(
            lambda n, path=path: where(n).weights[path], name, block / path_weight
        )
    unused = [key for key in blocks if key not in used and np.any(blocks[key] != 0)]
    if unused:
        raise ValueError(f"mace-torch {name} paths {unused} have no counterpart")


def _chunk_offsets(irreps: Any) -> list[int]:
    """Offset of each chunk among the chunks of the same irrep, in channels."""
    offsets, seen = [], {}
    for mul, ir in irreps:
        offsets.append(seen.get(str(ir), 0))
        seen[str(ir)] = offsets[-1] + mul
    return offsets


def _totals(irreps: Any) -> dict[str, int]:
    totals: dict[str, int] = {}
    for mul, ir in irreps:
        totals[str(ir)] = totals.get(str(ir), 0) + mul
    return totals


def _linear_blocks(linear: Any) -> Blocks:
    """An e3nn ``o3.Linear``'s effective weights: (ir_in, ir_out) -> [all input
    channels of ir_in, all output channels of ir_out], chunks in e3nn's order.

    Raises:
        ValueError: If the map has biases.
    """
    if linear.bias.numel() != 0:
        raise ValueError("linear maps with biases are not supported")
    weights = linear.weight.detach().double().numpy()
    rows, columns = _chunk_offsets(linear.irreps_in), _chunk_offsets(linear.irreps_out)
    totals_in, totals_out = _totals(linear.irreps_in), _totals(linear.irreps_out)
    blocks: Blocks = {}
    start = 0
    for instruction in linear.instructions:
        size = int(np.prod(instruction.path_shape))
        block = weights[start : start + size].reshape(instruction.path_shape)
        start += size
        ir_in = str(linear.irreps_in[instruction.i_in].ir)
        ir_out = str(linear.irreps_out[instruction.i_out].ir)
        matrix = blocks.setdefault(
            (ir_in, ir_out), np.zeros((totals_in[ir_in], totals_out[ir_out]))
        )
        row, column = rows[instruction.i_in], columns[instruction.i_out]
        matrix[row : row + block.shape[0], column : column + block.shape[1]] += (
            instruction.path_weight * block
        )
    return blocks


def _species_blocks(product: Any) -> Blocks:
    """The effective weights of e3nn's ``FullyConnectedTensorProduct`` of
    features with the species one-hot: (ir_in, ir_out) -> [input channels,
    species, output channels]."""
    import torch
    from e3nn import o3

    weights = product.weight.detach().double().numpy()
    blocks: Blocks = {}
    start = 0
    for instruction in product.instructions:
        size = int(np.prod(instruction.path_shape))
        block = weights[start : start + size].reshape(instruction.path_shape)
        start += size
        ir_in = product.irreps_in1[instruction.i_in1].ir
        ir_out = product.irreps_out[instruction.i_out].ir
        if (
            instruction.connection_mode != "uvw"
            or ir_in != ir_out
            or (product.irreps_in2[instruction.i_in2].ir != o3.Irrep("0e"))
        ):
            raise ValueError(f"unexpected species path {instruction}")
        coupling = float(
            o3.wigner_3j(ir_in.l, 0, ir_in.l, dtype=torch.float64)[0, 0, 0]
        )
        key = (str(ir_in), str(ir_out))
        if key in blocks:
            raise ValueError(f"several species paths {key}")
        blocks[key] = instruction.path_weight * coupling * block
    return blocks
