"""The linear maps of e3j (``e3j.linen.Linear`` and ``LinearIndexwise``), which
mlip 0.2's e3j-based networks use, into our
:class:`~mlip_eqx.models.blocks.linear.EquivariantLinear`.

e3j holds one array per irrep, ``weight{i}_{l}_{p}`` (l the degree, p the parity
as 1 or -1): [mul_out, mul_in], after a species axis for ``LinearIndexwise``.
Where the input and output list different irreps, it holds one per irrep of
either up to their highest degree, empty where one side lacks it. Its outputs are
divided by sqrt(mul_in), as ours ("path" normalisation of regrouped inputs).
"""

import math
import re
from collections.abc import Callable

import e3nn_jax as e3nn
import numpy as np

from mlip_eqx.models.blocks.linear import EquivariantLinear
from mlip_eqx.models.convert.mlip_tree import Assignments, MlipParams, output_block

_WEIGHT = re.compile(r"weight(\d+)_(\d+)_(-?1)")


def add_e3j_linear(
    assignments: Assignments,
    mlip: MlipParams,
    where: Callable,
    linear: EquivariantLinear,
    module: str,
    row_order: dict[str, np.ndarray] | None = None,
    zero_inputs: frozenset[str] = frozenset(),
) -> None:
    """The assignments of an EquivariantLinear from e3j's arrays of ``module``.

    Each nonempty array of e3j's feeds our weights of its input irrep (ours
    regroup the input: one per output chunk of that irrep, cut from e3j's output
    rows in order); an empty one must have no counterpart in ours.

    Args:
        assignments: Where the assignments go.
        mlip: mlip's parameters (all of ``module``'s are taken).
        where: Our linear map in the network.
        linear: That linear map.
        module: mlip's module path, e.g. ``"params/NequipLayer_0/residual_block"``.
        row_order: For each input irrep (as a string), mlip's input row of each
            of our input rows; None: the same rows.
        zero_inputs: Input irreps (as strings) that are identically zero in
            mlip's network and absent from ours: their arrays are dropped.

    Raises:
        ValueError: Naming an mlip parameter that is missing, unexpected, of the
            wrong shape or left over.
    """
    blocks: dict[str, str] = {}
    for name in mlip.names_under(module):
        match = _WEIGHT.fullmatch(name[len(module) + 1 :])
        if match is None:
            raise ValueError(f"unexpected mlip parameter {name!r}")
        if mlip.take(name).size:
            irrep = e3nn.Irrep(int(match.group(2)), int(match.group(3)))
            blocks[str(irrep)] = name
    used = set()
    instructions = e3nn.FunctionalLinear(
        linear.irreps_in, linear.irreps_out, path_normalization="path"
    ).instructions
    for index, instruction in enumerate(instructions):
        mul_in, ir_in = linear.irreps_in[instruction.i_in]
        irrep = str(ir_in)
        if irrep not in blocks:
            raise ValueError(
                f"mlip parameter {module}/weight*_{ir_in.l}_{ir_in.p} is missing "
                "or empty"
            )
        used.add(irrep)
        name = blocks[irrep]
        array = mlip.arrays[name]
        full = np.swapaxes(array, -1, -2)  # [..., mul_in, mul_out]
        mul_out = sum(mul for mul, ir in linear.irreps_out if str(ir) == irrep)
        if full.shape[-2:] != (mul_in, mul_out):
            raise ValueError(
                f"mlip parameter {name!r} has shape {array.shape}; ours maps "
                f"{mul_in}x{irrep} to {mul_out}x{irrep}"
            )
        if not math.isclose(instruction.path_weight, mul_in**-0.5, rel_tol=1e-12):
            raise ValueError(f"{module}: our normalisation of {irrep} differs")
        block = output_block(
            full, linear.irreps_out, instruction.i_out, irrep, row_order, module
        )
        assignments.add(lambda n, index=index: where(n).weights[index], name, block)
    unused = sorted(set(blocks) - used - zero_inputs)
    if unused:
        raise ValueError(
            f"mlip parameters {[blocks[irrep] for irrep in unused]} map to no "
            "array of ours"
        )
