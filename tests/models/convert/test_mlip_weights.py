"""mlip's NequIP and ViSNet parameter trees into ours, without mlip: every entry
of mlip's arrays lands in exactly one entry of ours, and a missing, unexpected or
misshapen parameter is named.

The mlip-layout trees are built here from our networks (mlip 0.2.5's module
names and e3nn-jax's weight names; ``benchmarks/mlip_parity.py`` checks the maps
against mlip itself). Filled with distinct integers, the map's result shows where
each mlip entry went, which also gives the inverse map of the round trip.
"""

import equinox as eqx
import jax
import numpy as np
import pytest

from mlip_eqx.models import Mace, Nequip, Visnet
from mlip_eqx.models.blocks.readouts import LinearReadout
from mlip_eqx.models.convert import (
    flatten_mlip_params,
    nequip_from_mlip_params,
    visnet_from_mlip_params,
)
from mlip_eqx.models.convert.nequip import mlip_gate_chunks
from tests.helpers.models import DATASET_INFO, NETWORK_CONFIGS


def _linear_names(linear, prefix: str, chunks_out, species: int | None = None):
    """mlip's weight names and shapes of an EquivariantLinear (one array per
    input irrep and mlip output chunk; a tensor product with the species
    one-hot if ``species``), the output chunks of an irrep cut from ours."""
    shapes = {}
    for i_in, (mul_in, ir_in) in enumerate(linear.irreps_in):
        for k, (mul_out, ir_out) in enumerate(chunks_out):
            if ir_out != ir_in:
                continue
            if species is None:
                name = f"w[{i_in},{k}] {mul_in}x{ir_in},{mul_out}x{ir_out}"
                shapes[f"{prefix}/{name}"] = (mul_in, mul_out)
            else:
                name = (
                    f"w[{i_in},0,{k}] {mul_in}x{ir_in},{species}x0e,{mul_out}x{ir_out}"
                )
                shapes[f"{prefix}/{name}"] = (mul_in, species, mul_out)
    return shapes


def nequip_layout(network: Nequip) -> dict[str, tuple]:
    """The names and shapes of mlip's NequIP parameters for ``network``."""
    block = "params/NequipBlock_0"
    scalars = network.embedding.shape[1]
    shapes = {f"{block}/Linear_0/w[0,0] {network.num_species}x0e,{scalars}x0e": (
        network.embedding.shape
    )}  # fmt: skip
    for index, layer in enumerate(network.layers):
        prefix = f"{block}/NequipLayer_{index}"
        shapes |= _linear_names(
            layer.self_connection,
            f"{prefix}/FullyConnectedTensorProduct_0",
            layer.irreps.gate_in,
            species=network.num_species,
        )
        shapes |= _linear_names(
            layer.linear_in, f"{prefix}/Linear_0", layer.irreps.labelled_in
        )
        shapes |= _linear_names(
            layer.linear_out, f"{prefix}/Linear_1", mlip_gate_chunks(layer.irreps)
        )
        for k, weight in enumerate(layer.radial_mlp.weights):
            shapes[f"{prefix}/MLP_0/Dense_{k}/kernel"] = weight.shape
    for module, linear in (("Linear_1", "hidden"), ("Linear_2", "output")):
        weight = getattr(network.readouts[0], linear).weights[0]
        shapes[f"{block}/{module}/w[0,0] {weight.shape[0]}x0e,{weight.shape[1]}x0e"] = (
            weight.shape
        )
    return shapes


def mace_v1_layout(network: Mace) -> dict[str, tuple]:
    """The names and shapes of mlip 0.1's MACE parameters (``models_v1.Mace``)
    for ``network``."""
    block = "params/MaceBlock_0"
    shapes = {f"{block}/LinearNodeEmbeddingBlock_0/embeddings": network.embedding.shape}
    for index, layer in enumerate(network.layers):
        prefix = f"{block}/layer_{index}"
        interaction = f"{prefix}/InteractionBlock_0"
        product = f"{prefix}/EquivariantProductBasisBlock_0"
        for linear, module in (
            (layer.interaction.linear_up, f"{interaction}/linear_up"),
            (layer.interaction.linear_down, f"{interaction}/linear_down"),
            (layer.product_basis.linear, f"{product}/Linear_0"),
        ):
            shapes |= _linear_names(linear, module, linear.irreps_out)
        shapes |= _linear_names(
            layer.species_linear,
            f"{prefix}/FullyConnectedTensorProduct_0",
            layer.species_linear.irreps_out,
            species=network.num_species,
        )
        mlp = f"{interaction}/MessagePassingConvolution_0/MultiLayerPerceptron_0"
        for k, weight in enumerate(layer.interaction.radial_mlp.weights):
            shapes[f"{mlp}/Dense_{k}/kernel"] = weight.shape
        contraction = layer.product_basis.symmetric_contraction.weights
        for key, weight in contraction.items():
            shapes[f"{product}/SymmetricContraction_0/{key}"] = weight.shape
        readout = layer.readouts[0]
        if isinstance(readout, LinearReadout):
            modules = (("LinearReadoutBlock_0/Linear_0", readout.linear),)
        else:
            modules = (
                ("NonLinearReadoutBlock_0/Linear_0", readout.hidden),
                ("NonLinearReadoutBlock_0/Linear_1", readout.output),
            )
        for module, linear in modules:
            shapes |= _linear_names(linear, f"{prefix}/{module}", linear.irreps_out)
    return shapes


# Our attribute names -> mlip 0.2.5's ViSNet module names.
_VISNET_MODULES = {
    "layer_norm": "layernorm",
    "vector_projection": "vec_proj",
    "query_projection": "q_proj",
    "key_projection": "k_proj",
    "value_projection": "v_proj",
    "distance_key": "dk_proj",
    "distance_value": "dv_proj",
    "scalar_projection": "s_proj",
    "output_projection": "o_proj",
    "norm_projection": "vec1_proj",
    "distance_projection": "distance_proj",
    "combine": "combine",
    "edge_projection": "edge_proj",
    "hidden": "update_net/layers_0",
    "output": "update_net/layers_1",
    "weight": "kernel",
    "bias": "bias",
}
_LAYER_NORM = {"weight": "scale", "bias": "bias"}
_VISNET_READOUT_MODULES = {"vector_projection": "vec2_proj"}
_VISNET_EDGE_UPDATE = {
    "edge_projection": "f_proj",
    "source_projection": "w_src_proj",
    "target_projection": "w_trg_proj",
}


def _visnet_name(parts: list[str]) -> str:
    """mlip's name of our ViSNet array at the attribute path ``parts``."""
    if parts[0] == "embedding":
        tables = {
            "species_embedding": "node_embedding/embed/embedding",
            "neighbour_embedding": "neighbor_embedding/embedding/embedding",
        }
        if parts[1] in tables:
            return f"params/embedding_block/{tables[parts[1]]}"
        module = "edge" if parts[1] == "edge_projection" else "neighbor"
        modules = [_VISNET_MODULES[part] for part in parts[1:]]
        return f"params/embedding_block/{module}_embedding/" + "/".join(modules)
    if parts[0] in ("rbf_centres", "rbf_widths"):
        leaf = {"rbf_centres": "means", "rbf_widths": "betas"}[parts[0]]
        return f"params/embedding_block/radial_embedding/{leaf}"
    if parts[0] == "readout_norm":
        return f"params/readout_block/layernorm/{_LAYER_NORM[parts[1]]}"
    if parts[0] == "readouts":
        head, block, *rest = parts[1], parts[3], *parts[4:]
        modules = [_VISNET_READOUT_MODULES.get(part, part) for part in rest]
        modules = [_VISNET_MODULES.get(part, part) for part in modules]
        return f"params/readout_block/output_networks_{head}_{block}/" + "/".join(
            modules
        )
    layer, *rest = parts[1:]
    if rest[0] == "edge_update":
        rest = [_VISNET_EDGE_UPDATE[rest[1]], *rest[2:]]
    if rest[0] == "layer_norm":
        return f"params/visnet_layers_{layer}/layernorm/{_LAYER_NORM[rest[1]]}"
    modules = [_VISNET_MODULES.get(part, part) for part in rest]
    return f"params/visnet_layers_{layer}/" + "/".join(modules)


def visnet_layout(network: Visnet) -> dict[str, tuple]:
    """The names and shapes of mlip's ViSNet parameters for ``network``."""
    arrays = eqx.filter(network, eqx.is_array)
    shapes = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(arrays)[0]:
        parts = [str(getattr(key, "name", getattr(key, "idx", key))) for key in path]
        shapes[_visnet_name(parts)] = leaf.shape
    return shapes


def nested(flat: dict[str, np.ndarray]) -> dict:
    """``{"a/b/c": x}`` as flax stores it: ``{"a": {"b": {"c": x}}}``."""
    tree: dict = {}
    for name, value in flat.items():
        *modules, leaf = name.split("/")
        node = tree
        for module in modules:
            node = node.setdefault(module, {})
        node[leaf] = value
    return tree


def our_arrays(network) -> np.ndarray:
    """Every entry of the network's arrays, flattened in leaf order."""
    leaves = jax.tree.leaves(eqx.filter(network, eqx.is_array))
    return np.concatenate([np.ravel(np.asarray(leaf)) for leaf in leaves])


LAYOUTS = {Nequip: nequip_layout, Visnet: visnet_layout}
CONVERTERS = {Nequip: nequip_from_mlip_params, Visnet: visnet_from_mlip_params}


@pytest.fixture(
    params=[name for name, (cls, _) in NETWORK_CONFIGS.items() if cls in LAYOUTS],
    scope="module",
)
def case(request):
    """A network of the shared suite's configs, mlip's layout of it, its map."""
    network_class, config = NETWORK_CONFIGS[request.param]
    network = network_class(config, DATASET_INFO, key=jax.random.key(1))
    return network, LAYOUTS[network_class](network), CONVERTERS[network_class]


def integer_ids(layout: dict[str, tuple]) -> tuple[dict[str, np.ndarray], int]:
    """Arrays of mlip's layout holding 0, 1, 2, ... (one number per entry), and
    how many."""
    ids, offset = {}, 0
    for name, shape in layout.items():
        size = int(np.prod(shape))
        ids[name] = np.arange(offset, offset + size, dtype=np.float32).reshape(shape)
        offset += size
    return ids, offset


def test_every_mlip_entry_lands_in_one_entry_of_ours(case):
    network, layout, convert = case
    ids, offset = integer_ids(layout)
    mapped = convert(network, nested(ids))
    assert np.array_equal(np.sort(our_arrays(mapped)), np.arange(offset))


def test_round_trip(case):
    """Ours -> mlip's layout (the inverse from the integers' map) -> ours."""
    network, layout, convert = case
    ids, offset = integer_ids(layout)
    where = our_arrays(convert(network, nested(ids))).astype(np.int64)
    ours = our_arrays(network)
    entries = np.empty(offset, ours.dtype)
    entries[where] = ours
    mlip = {name: entries[value.astype(np.int64)] for name, value in ids.items()}
    assert np.array_equal(our_arrays(convert(network, nested(mlip))), ours)
    mapped = convert(network, nested(mlip))
    assert jax.tree.structure(mapped) == jax.tree.structure(network)


def _zeros(layout: dict) -> dict[str, np.ndarray]:
    return {name: np.zeros(shape, np.float32) for name, shape in layout.items()}


def test_a_missing_parameter_is_named(case):
    network, layout, convert = case
    params = _zeros(layout)
    missing = next(name for name in layout if "kernel" in name or "w[" in name)
    del params[missing]
    with pytest.raises(ValueError, match="missing|no mlip parameter"):
        convert(network, nested(params))


def test_an_unexpected_parameter_is_named(case):
    network, layout, convert = case
    params = _zeros(layout)
    extra = next(iter(layout)).rsplit("/", 1)[0] + "/surplus"
    params[extra] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="surplus"):
        convert(network, nested(params))


def test_a_wrong_shape_is_named(case):
    network, layout, convert = case
    params = _zeros(layout)
    name = next(name for name in layout if "kernel" in name)
    params[name] = np.zeros((1, *layout[name]), np.float32)
    with pytest.raises(ValueError, match="shape") as error:
        convert(network, nested(params))
    assert name in str(error.value)


def test_nequip_missing_kernel_names_the_key():
    network = Nequip(NETWORK_CONFIGS["nequip"][1], DATASET_INFO)
    params = _zeros(nequip_layout(network))
    name = "params/NequipBlock_0/NequipLayer_1/MLP_0/Dense_0/kernel"
    del params[name]
    with pytest.raises(ValueError, match=f"mlip parameter '{name}' is missing"):
        nequip_from_mlip_params(network, nested(params))


def test_flatten_joins_the_path_with_slashes():
    tree = {"params": {"a": {"kernel": np.ones(2)}, "b": np.zeros(1)}}
    flat = flatten_mlip_params(tree)
    assert list(flat) == ["params/a/kernel", "params/b"]
