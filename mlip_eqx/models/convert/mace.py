"""mlip's MACE parameters (its ``models_v1.Mace``, version 0.1's network, also in
mlip 0.2.5) into our :class:`~mlip_eqx.models.Mace`."""

from collections.abc import Callable, Mapping

from mlip_eqx.models.blocks.readouts import LinearReadout
from mlip_eqx.models.convert.mlip_tree import Assignments, MlipParams, layer_part
from mlip_eqx.models.convert.nequip import _SPECIES_PRODUCT, add_linear
from mlip_eqx.models.mace import Mace
from mlip_eqx.models.mace.network import MaceLayer

_BLOCK = "params/MaceBlock_0"


def mace_from_mlip_params(network: Mace, params: Mapping) -> Mace:
    """``network`` with the parameters of mlip 0.1's MACE of the same config.

    Our MACE follows mlip 0.1's module by module: the same arrays in the same
    bases (the symmetric contraction's weights in e3nn's reduced tensor-product
    basis), the messages in e3nn's order; only the species axis of the
    species-wise linear maps moves (mlip: a tensor product with the species
    one-hot, [mul_in, species, mul_out]).

    Args:
        network: Our MACE of the same config and elements (one readout head,
            without the options mlip 0.1 lacks); its arrays are replaced.
        params: mlip's network parameters, ``{"params": {"MaceBlock_0": ...}}``.

    Returns:
        The network with mlip's weights, in the dtype of ours.

    Raises:
        ValueError: If a parameter is missing, unexpected or of the wrong shape
            (the message names it).
    """
    mlip = MlipParams(params)
    assignments = Assignments()
    assignments.add(
        lambda n: n.embedding,
        *mlip.take_only(f"{_BLOCK}/LinearNodeEmbeddingBlock_0"),
    )
    for index, layer in enumerate(network.layers):
        _add_layer(assignments, mlip, index, layer)
    mlip.check_all_taken()
    return assignments.apply(network)


def _add_layer(
    assignments: Assignments, mlip: MlipParams, index: int, layer: MaceLayer
) -> None:
    """The assignments of one layer (``layer_<index>``)."""
    prefix = f"{_BLOCK}/layer_{index}"

    def at(*names: str) -> Callable:
        return layer_part(index, *names)

    interaction = layer.interaction
    linears = (
        (("interaction", "linear_up"), interaction.linear_up,
         "InteractionBlock_0/linear_up"),
        (("interaction", "linear_down"), interaction.linear_down,
         "InteractionBlock_0/linear_down"),
        (("product_basis", "linear"), layer.product_basis.linear,
         "EquivariantProductBasisBlock_0/Linear_0"),
    )  # fmt: skip
    for names, linear, module in linears:
        add_linear(
            assignments, mlip, at(*names), linear, f"{prefix}/{module}",
            linear.irreps_out,
        )  # fmt: skip
    add_linear(
        assignments, mlip, at("species_linear"), layer.species_linear,
        f"{prefix}/FullyConnectedTensorProduct_0", layer.species_linear.irreps_out,
        pattern=_SPECIES_PRODUCT, species_axis=True,
        scale=layer.species_linear.num_species**-0.5,
    )  # fmt: skip
    mlp = f"{prefix}/InteractionBlock_0/MessagePassingConvolution_0"
    for k in range(len(interaction.radial_mlp.weights)):
        name = f"{mlp}/MultiLayerPerceptron_0/Dense_{k}/kernel"
        assignments.add(
            lambda n, k=k: n.layers[index].interaction.radial_mlp.weights[k],
            name,
            mlip.take(name),
        )
    contraction = f"{prefix}/EquivariantProductBasisBlock_0/SymmetricContraction_0"
    for key in layer.product_basis.symmetric_contraction.weights:
        name = f"{contraction}/{key}"
        assignments.add(
            lambda n, key=key: n.layers[
                index
            ].product_basis.symmetric_contraction.weights[key],
            name,
            mlip.take(name),
        )
    readout = layer.readouts[0]
    if isinstance(readout, LinearReadout):
        modules = (("linear", "LinearReadoutBlock_0/Linear_0"),)
    else:
        modules = (
            ("hidden", "NonLinearReadoutBlock_0/Linear_0"),
            ("output", "NonLinearReadoutBlock_0/Linear_1"),
        )
    for name, module in modules:
        assignments.add(
            lambda n, name=name: getattr(n.layers[index].readouts[0], name).weights[0],
            *mlip.take_only(f"{prefix}/{module}"),
        )
