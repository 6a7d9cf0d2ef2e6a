"""mlip's networks with random weights, evaluated on given edges (for
``mlip_parity``); run in mlip's interpreter."""

import importlib
import importlib.metadata

MLIP_SEED = 3
# mlip's initial weights times this: larger weights make the non-linear paths of
# deeper layers matter more, so that a wrongly mapped weight shows.
WEIGHT_SCALE = 1.25
# Plus normal offsets of this standard deviation: biases and layer-norm offsets
# start at zero (and layer-norm scales at one), which would hide a wrong mapping.
WEIGHT_OFFSET = 0.1
# mlip's batches end with a padding graph (jraph's convention); ours has one node.
_PADDING_NODES = 1


def node_energies(
    mlip_module: str,
    mlip_class: str,
    config: dict,
    dataset_info: dict,
    elements: list[int],
    inputs: list[dict],
) -> dict:
    """mlip's network ``mlip_module.mlip_class`` of ``config`` with random
    weights (mlip's initialisation for ``MLIP_SEED``, scaled and offset), in
    float64: its parameters (as flax stores them), their count, and its node
    energies for each of ``inputs`` (edge vectors, species, senders,
    receivers). ``mlip.models_v1`` networks take edge arrays, ``mlip.models``
    networks a ``Graph``."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import numpy as np
    from mlip.data.dataset_info import DatasetInfo

    dataset_info = dict(dataset_info)
    dataset_info["atomic_energies_map"] = {
        int(z): e for z, e in dataset_info["atomic_energies_map"].items()
    }
    network_class = getattr(importlib.import_module(mlip_module), mlip_class)
    network = network_class(network_class.Config(**config), DatasetInfo(**dataset_info))
    if mlip_module == "mlip.models_v1":
        arguments = [
            (item["edge_vectors"], item["species"], item["senders"], item["receivers"])
            for item in inputs
        ]

        def energies(params, item_arguments):
            return network.apply(params, *item_arguments)

    else:
        arguments = [(_mlip_graph(item, elements),) for item in inputs]

        def energies(params, item_arguments):
            (graph,) = item_arguments
            output = network.apply(params, graph)
            return output.nodes.features["energy"][:-_PADDING_NODES]

    params = network.init(jax.random.key(MLIP_SEED), *arguments[0])
    rng = np.random.default_rng(MLIP_SEED)
    params = jax.tree.map(
        lambda x: (
            WEIGHT_SCALE * np.asarray(x, np.float64)
            + WEIGHT_OFFSET * rng.standard_normal(np.shape(x))
        ),
        params,
    )
    return {
        "params": params,
        "num_parameters": int(sum(np.size(v) for v in jax.tree.leaves(params))),
        "node_energies": [np.asarray(energies(params, item)) for item in arguments],
        "mlip_version": importlib.metadata.version("mlip"),
    }


def _mlip_graph(item: dict, elements: list[int]):
    """An mlip ``Graph`` of one structure whose edge vectors are exactly
    ``item["edge_vectors"]``: all positions at the origin, the unit cell, and the
    edge vectors as the cell shifts; then a padding graph."""
    import numpy as np
    from mlip.graph import Graph, GraphEdges, GraphGlobals, GraphNodes

    num_nodes, num_edges = len(item["species"]), len(item["senders"])
    atomic_numbers = np.asarray(elements)[item["species"]]
    return Graph(
        nodes=GraphNodes(
            positions=np.zeros((num_nodes + _PADDING_NODES, 3)),
            atomic_numbers=np.concatenate([atomic_numbers, [elements[0]]]),
        ),
        edges=GraphEdges(shifts=item["edge_vectors"]),
        globals=GraphGlobals(cell=np.stack([np.eye(3)] * 2), weight=np.ones(2)),
        n_node=np.array([num_nodes, _PADDING_NODES]),
        n_edge=np.array([num_edges, 0]),
        senders=item["senders"],
        receivers=item["receivers"],
    )
