"""mlip's ViSNet parameters (mlip 0.2.5's ``models.Visnet`` with
``use_legacy_visnet=False``) into our :class:`~mlip_eqx.models.Visnet`."""

import re
from collections.abc import Mapping

from mlip_eqx.models.convert.mlip_tree import Assignments, MlipParams
from mlip_eqx.models.visnet import Visnet

# mlip 0.2.5's ViSNet module names -> ours, per level of the parameter path ("":
# a level that ours does not have).
_NAMES = {
    "embedding_block": "embedding",
    "node_embedding": "",
    "embed": "",
    "neighbor_embedding": "",
    "edge_embedding": "",
    "radial_embedding": "",
    "distance_proj": "distance_projection",
    "combine": "combine",
    "edge_proj": "edge_projection",
    "layernorm": "layer_norm",
    "vec_proj": "vector_projection",
    "q_proj": "query_projection",
    "k_proj": "key_projection",
    "v_proj": "value_projection",
    "dk_proj": "distance_key",
    "dv_proj": "distance_value",
    "s_proj": "scalar_projection",
    "o_proj": "output_projection",
    "f_proj": "edge_update.edge_projection",
    "w_src_proj": "edge_update.source_projection",
    "w_trg_proj": "edge_update.target_projection",
    "vec1_proj": "norm_projection",
    "vec2_proj": "vector_projection",
    "update_net": "",
    "layers_0": "hidden",
    "layers_1": "output",
    "kernel": "weight",
    "scale": "weight",
    "bias": "bias",
}
# Embedding tables, by (module below embedding_block, leaf).
_EMBEDDING_TABLES = {
    ("node_embedding", "embedding"): "species_embedding",
    ("neighbor_embedding", "embedding"): "neighbour_embedding",
}
_RADIAL_BASIS = {"means": "rbf_centres", "betas": "rbf_widths"}


def visnet_from_mlip_params(network: Visnet, params: Mapping) -> Visnet:
    """``network`` with the parameters of mlip's ViSNet of the same config.

    Every mlip array maps to one array of ours of the same shape
    (``benchmarks/mlip_parity.py`` checks the node energies against mlip 0.2.5 to
    1e-15 eV in float64).

    Args:
        network: Our ViSNet of the same config and elements; its arrays are
            replaced.
        params: mlip's network parameters as flax stores them, ``{"params":
            {"embedding_block": {...}, "visnet_layers_0": {...}, ...}}`` (the
            result of ``network.init``).

    Returns:
        The network with mlip's weights, in the dtype of ours.

    Raises:
        ValueError: If a parameter is missing, unexpected or of the wrong shape
            (the message names it).
    """
    mlip = MlipParams(params)
    assignments = Assignments()
    for name in mlip.arrays:
        path = visnet_attribute_path(name)
        assignments.add(
            lambda n, path=path, name=name: _resolve(n, path, name),
            name,
            mlip.take(name),
        )
    return assignments.apply(network)


def visnet_attribute_path(name: str) -> str:
    """Our attribute path (e.g. "layers[1].edge_update.edge_projection.weight")
    of an mlip ViSNet parameter (e.g. "params/visnet_layers_1/f_proj/kernel").

    Raises:
        ValueError: If the name is not one of mlip's ViSNet parameters.
    """
    parts = name.split("/")
    try:
        if parts[0] != "params" or len(parts) < 3:
            raise KeyError(name)
        return _attribute_path(parts[1:])
    except (KeyError, AttributeError) as error:
        raise ValueError(f"unexpected mlip parameter {name!r}") from error


def _attribute_path(parts: list[str]) -> str:
    """:func:`visnet_attribute_path` of the path below "params" (KeyError or
    AttributeError for an unknown one)."""
    if parts[0] == "readout_block":
        if parts[1] == "layernorm":
            return f"readout_norm.{_NAMES[parts[2]]}"
        head, block = re.fullmatch(r"output_networks_(\d+)_(\d+)", parts[1]).groups()
        rest = [_NAMES[part] for part in parts[2:]]
        return f"readouts[{head}].blocks[{block}]." + ".".join(filter(None, rest))
    if parts[0] == "embedding_block" and parts[1] == "radial_embedding":
        return _RADIAL_BASIS[parts[2]]
    if parts[0] == "embedding_block":
        table = _EMBEDDING_TABLES.get((parts[1], parts[-1]))
        if table is not None:
            return f"embedding.{table}"
        return "embedding." + ".".join(filter(None, map(_NAMES.__getitem__, parts[1:])))
    (layer,) = re.fullmatch(r"visnet_layers_(\d+)", parts[0]).groups()
    return f"layers[{layer}]." + ".".join(_NAMES[part] for part in parts[1:])


def _resolve(network: Visnet, path: str, name: str):
    """The attribute of ``network`` at a path such as "layers[1].key.weight".

    Raises:
        ValueError: If the network has no such attribute (naming mlip's ``name``).
    """
    node = network
    try:
        for part in path.split("."):
            match = re.fullmatch(r"(\w+)\[(\d+)\]", part)
            if match is None:
                node = getattr(node, part)
            else:
                node = getattr(node, match.group(1))[int(match.group(2))]
    except (AttributeError, IndexError) as error:
        raise ValueError(
            f"mlip parameter {name!r} maps to {path!r}, which this "
            "network does not have"
        ) from error
    return node
