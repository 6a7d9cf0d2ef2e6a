"""Same function as the original library: with mlip's weights mapped into ours, a
network gives mlip's node energies.

    python benchmarks/mlip_parity.py --model nequip|visnet|visnet-variants \
        --mlip-python /tmp/peer_mlip/bin/python

The script runs itself in mlip's interpreter as a child (``--child``): the child
builds mlip's network with random weights (from ``mlip.models_v1``, the 0.1
architecture that our MACE and NequIP follow, called on edge arrays; or from
``mlip.models``, the 0.2 networks such as ViSNet, called on a ``Graph``),
evaluates it on the structures the parent wrote, and writes its weights and node
energies to a temporary directory; the parent maps the weights into our network
and evaluates it on the same edges, in float64. It prints
both parameter counts and the largest |node energy difference| and writes JSON to
``benchmarks/results/mlip_parity_<model>.json``. A model is added with an entry
in ``MODELS`` (its config, how the child builds mlip's network, how the weights
are mapped).
"""

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ELEMENTS = (1, 6, 8)  # H, C, O
CUTOFF = 4.0  # Å
DATASET_INFO = {
    "atomic_energies_map": {1: -1.5, 6: -3.25, 8: -2.0},
    "avg_num_neighbors": 9.0,
    "scaling_mean": 0.3,
    "scaling_stdev": 1.7,
}
MLIP_SEED = 3
# mlip's initial weights times this: larger weights make the non-linear paths of
# deeper layers matter more, so that a wrongly mapped weight shows.
WEIGHT_SCALE = 1.25
# Plus normal offsets of this standard deviation: biases and layer-norm offsets
# start at zero (and layer-norm scales at one), which would hide a wrong mapping.
WEIGHT_OFFSET = 0.1


@dataclasses.dataclass(frozen=True)
class ParityModel:
    """One network compared with mlip.

    Attributes:
        mlip_class: Attribute of ``mlip_module`` that the child builds.
        config: Config fields, named alike in mlip's and in our config.
        network_class: Our registered network name.
        map_weights: ``(our network, {mlip parameter path: array}) -> network``
            with mlip's weights.
        mlip_module: "mlip.models_v1" (networks of edge arrays) or "mlip.models"
            (networks of a ``Graph``).
        mlip_only_config: Further fields of mlip's config (absent from ours).
    """

    mlip_class: str
    config: dict
    network_class: str
    map_weights: Callable
    mlip_module: str = "mlip.models_v1"
    mlip_only_config: dict = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------- parent side


def structures() -> list:
    """A molecule and a triclinic periodic cell of H, C and O."""
    import numpy as np

    from mlip_eqx.data.chemical_system import ChemicalSystem

    rng = np.random.default_rng(0)

    def spread_out(num_atoms: int, cell: np.ndarray) -> np.ndarray:
        """Positions in the cell at least 1 Å apart (periodic images ignored)."""
        positions: list[np.ndarray] = []
        while len(positions) < num_atoms:
            candidate = rng.uniform(0.0, 1.0, 3) @ cell
            if all(np.linalg.norm(candidate - p) > 1.0 for p in positions):
                positions.append(candidate)
        return np.array(positions)

    molecule = ChemicalSystem(
        atomic_numbers=rng.choice(ELEMENTS, 9),
        positions=spread_out(9, 4.0 * np.eye(3)),
    )
    cell = np.array([[5.0, 0.0, 0.0], [1.2, 4.6, 0.0], [-0.7, 0.9, 4.8]])
    crystal = ChemicalSystem(
        atomic_numbers=rng.choice(ELEMENTS, 7),
        positions=spread_out(7, cell),
        cell=cell,
        pbc=np.array([True, True, True]),
    )
    return [molecule, crystal]


def graph_inputs(systems: list) -> list[dict]:
    """Edge vectors, species, senders and receivers of each structure (numpy)."""
    import numpy as np

    from mlip_eqx.data.graph_creation import graph_from_chemical_system, species_table

    table = species_table(list(ELEMENTS))
    inputs = []
    for system in systems:
        graph = graph_from_chemical_system(
            system, CUTOFF, table, min_interatomic_distance=0.0
        )
        inputs.append(
            {
                "edge_vectors": np.asarray(graph.edge_vectors(), np.float64),
                "species": np.asarray(graph.species, np.int32),
                "senders": np.asarray(graph.senders, np.int32),
                "receivers": np.asarray(graph.receivers, np.int32),
            }
        )
    return inputs


def num_parameters(network) -> int:
    import equinox as eqx
    import jax

    arrays = eqx.filter(network, eqx.is_array)
    return sum(leaf.size for leaf in jax.tree.leaves(arrays))


def run_parity(model_name: str, mlip_python: str) -> dict:
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from mlip_eqx.data.dataset_info import DatasetInfo
    from mlip_eqx.models.registry import get_network_class

    model = MODELS[model_name]
    inputs = graph_inputs(structures())
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        np.savez(
            work / "inputs.npz",
            **{f"{i}_{k}": v for i, item in enumerate(inputs) for k, v in item.items()},
        )
        (work / "inputs.json").write_text(
            json.dumps(
                {
                    "num_structures": len(inputs),
                    "config": {**model.config, **model.mlip_only_config},
                    "dataset_info": {**DATASET_INFO, "graph_cutoff_angstrom": CUTOFF},
                    "mlip_module": model.mlip_module,
                    "mlip_class": model.mlip_class,
                }
            )
        )
        subprocess.run(
            [mlip_python, __file__, "--child", "--work-dir", str(work)], check=True
        )
        child = json.loads((work / "mlip_output.json").read_text())
        with np.load(work / "mlip_arrays.npz") as arrays:
            mlip_params = {
                name: arrays[f"param_{i}"] for i, name in enumerate(child["names"])
            }
            mlip_energies = [arrays[f"energies_{i}"] for i in range(len(inputs))]

    info = DatasetInfo(
        atomic_energies_map=DATASET_INFO["atomic_energies_map"],
        cutoff_distance_angstrom=CUTOFF,
        avg_num_neighbors=DATASET_INFO["avg_num_neighbors"],
        scaling_mean=DATASET_INFO["scaling_mean"],
        scaling_stdev=DATASET_INFO["scaling_stdev"],
    )
    network_class = get_network_class(model.network_class)
    network = network_class(network_class.Config(**model.config), info)
    network = model.map_weights(network, mlip_params)
    differences, interactions = [], []
    e0 = np.array([DATASET_INFO["atomic_energies_map"][z] for z in ELEMENTS])
    for item, expected in zip(inputs, mlip_energies):
        ours = network(
            item["edge_vectors"], item["species"], item["senders"], item["receivers"]
        )
        differences.append(float(np.max(np.abs(np.asarray(ours) - expected))))
        interactions.append(float(np.max(np.abs(expected - e0[item["species"]]))))
    return {
        "model": model_name,
        "mlip_class": f"{model.mlip_module}.{model.mlip_class}",
        "mlip_only_config": model.mlip_only_config,
        "mlip_version": child["mlip_version"],
        "config": model.config,
        "dtype": "float64",
        "num_structures": len(inputs),
        "num_atoms": [len(item["species"]) for item in inputs],
        "parameters_ours": num_parameters(network),
        "parameters_mlip": child["num_parameters"],
        "max_abs_node_energy_difference_eV": max(differences),
        "max_abs_node_energy_minus_e0_eV": max(interactions),
    }


# ---------------------------------------------------------------- weight maps


def _set(network, where: Callable, value):
    import equinox as eqx
    import jax.numpy as jnp

    old = where(network)
    new = jnp.asarray(value, old.dtype)
    if new.shape != old.shape:
        raise ValueError(f"shape {new.shape} does not fit {old.shape}")
    return eqx.tree_at(where, network, new)


_LINEAR = re.compile(r"w\[(\d+),(\d+)\] (\d+)x(\d[eo]),(\d+)x(\d[eo])$")
_SPECIES_PRODUCT = re.compile(
    r"w\[(\d+),0,(\d+)\] (\d+)x(\d[eo]),(\d+)x0e,(\d+)x(\d[eo])$"
)


def _irrep_blocks(weights: dict, pattern: re.Pattern) -> dict:
    """mlip's weights of one module by (input irrep, output chunk index)."""
    blocks = {}
    for name, value in weights.items():
        match = pattern.match(name)
        if match is None:
            raise ValueError(f"unexpected parameter {name!r}")
        groups = match.groups()
        blocks[groups[3], int(groups[1])] = value
    return blocks


def _map_linear(network, where: Callable, blocks: dict, chunks_out, row_order=None):
    """Sets an EquivariantLinear from mlip's [mul_in, (species,) mul_out] blocks.

    Output chunks of one irrep are matched as one concatenated axis (mlip may split
    what we simplify); ``row_order`` maps our input rows of an irrep to mlip's.
    """
    import numpy as np

    linear = where(network)
    for index, (i_in, i_out, _) in enumerate(linear._paths):
        ir_in = str(linear.irreps_in[i_in].ir)
        ours_chunks = [
            k for k, (_, ir) in enumerate(linear.irreps_out) if str(ir) == ir_in
        ]
        theirs = [
            blocks[ir_in, k]
            for k, (_, ir) in enumerate(chunks_out)
            if str(ir) == ir_in and (ir_in, k) in blocks
        ]
        full = np.concatenate(theirs, axis=-1)
        start = sum(linear.irreps_out[k].mul for k in ours_chunks if k < i_out)
        block = full[..., start : start + linear.irreps_out[i_out].mul]
        if row_order is not None:
            block = block[..., row_order[ir_in], :]
        network = _set(network, lambda n, index=index: where(n).weights[index], block)
    return network


def _message_rows(layer) -> dict:
    """For each message irrep, mlip's row of each of our rows of linear_out."""
    import numpy as np

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
    return {ir: np.asarray(rows) for ir, rows in order.items()}


def map_nequip_weights(network, params: dict):
    """mlip 0.1 NequIP's weights (``NequipBlock_0/...``) into our Nequip."""
    import numpy as np

    def module(prefix: str) -> dict:
        return {
            name[len(prefix) :]: value
            for name, value in params.items()
            if name.startswith(prefix)
        }

    block = "params/NequipBlock_0/"
    (embedding,) = module(block + "Linear_0/").values()
    network = _set(network, lambda n: n.embedding, embedding)
    for index, layer in enumerate(network.layers):
        prefix = f"{block}NequipLayer_{index}/"

        def at(name, index=index):
            return lambda n: getattr(n.layers[index], name)

        gate_chunks = _gate_chunks_of_mlip(layer.irreps)
        species_blocks = {
            key: np.transpose(value, (1, 0, 2))
            for key, value in _irrep_blocks(
                module(prefix + "FullyConnectedTensorProduct_0/"), _SPECIES_PRODUCT
            ).items()
        }
        network = _map_linear(
            network, at("self_connection"), species_blocks, layer.irreps.gate_in
        )
        network = _map_linear(
            network,
            at("linear_in"),
            _irrep_blocks(module(prefix + "Linear_0/"), _LINEAR),
            layer.irreps.labelled_in,
        )
        network = _map_linear(
            network,
            at("linear_out"),
            _irrep_blocks(module(prefix + "Linear_1/"), _LINEAR),
            gate_chunks,
            row_order=_message_rows(layer),
        )
        for k in range(len(layer.radial_mlp.weights)):
            network = _set(
                network,
                lambda n, index=index, k=k: n.layers[index].radial_mlp.weights[k],
                params[f"{prefix}MLP_0/Dense_{k}/kernel"],
            )
    (hidden,) = module(block + "Linear_1/").values()
    (output,) = module(block + "Linear_2/").values()
    network = _set(network, lambda n: n.readouts[0].hidden.weights[0], hidden)
    return _set(network, lambda n: n.readouts[0].output.weights[0], output)


def _gate_chunks_of_mlip(irreps):
    """mlip's (unsimplified) output chunks of the linear map before the gate:
    scalars, one gate chunk per non-scalar, non-scalars."""
    import e3nn_jax as e3nn

    scalars = [(m, ir) for m, ir in irreps.labelled_out if ir.l == 0]
    nonscalars = [(m, ir) for m, ir in irreps.labelled_out if ir.l > 0]
    gates = [(m, e3nn.Irrep("0e")) for m, _ in nonscalars]
    return e3nn.Irreps(scalars + gates + nonscalars)


# mlip 0.2.5's ViSNet module names -> ours, per level of the parameter path.
_VISNET_NAMES = {
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
_VISNET_LEAVES = {
    ("node_embedding", "embedding"): "species_embedding",
    ("neighbor_embedding", "embedding"): "neighbour_embedding",
}


def _visnet_path(name: str) -> str:
    """Our attribute path (e.g. "layers[1].edge_update.edge_projection.weight") of
    an mlip ViSNet parameter (e.g. "params/visnet_layers_1/f_proj/kernel")."""
    parts = name.split("/")[1:]
    if parts[0] == "readout_block":
        if parts[1] == "layernorm":
            return f"readout_norm.{_VISNET_NAMES[parts[2]]}"
        head, block = re.fullmatch(r"output_networks_(\d+)_(\d+)", parts[1]).groups()
        rest = [_VISNET_NAMES[part] for part in parts[2:]]
        return f"readouts[{head}].blocks[{block}]." + ".".join(filter(None, rest))
    if parts[0] == "embedding_block" and parts[1] == "radial_embedding":
        return {"means": "rbf_centres", "betas": "rbf_widths"}[parts[2]]
    if parts[0] == "embedding_block":
        leaf = _VISNET_LEAVES.get((parts[1], parts[-1]))
        if leaf is not None:
            return f"embedding.{leaf}"
        return "embedding." + ".".join(
            filter(None, (_VISNET_NAMES[part] for part in parts[1:]))
        )
    (layer,) = re.fullmatch(r"visnet_layers_(\d+)", parts[0]).groups()
    return f"layers[{layer}]." + ".".join(_VISNET_NAMES[part] for part in parts[1:])


def _resolve(network, path: str):
    """The attribute of ``network`` at a path such as "layers[1].key.weight"."""
    node = network
    for part in path.split("."):
        match = re.fullmatch(r"(\w+)\[(\d+)\]", part)
        if match is None:
            node = getattr(node, part)
        else:
            node = getattr(node, match.group(1))[int(match.group(2))]
    return node


def map_visnet_weights(network, params: dict):
    """mlip 0.2.5 ViSNet's weights (``params/visnet_layers_0/...``) into our
    Visnet; every one of our arrays must receive one."""
    import equinox as eqx
    import jax

    paths = {_visnet_path(name): value for name, value in params.items()}
    if len(paths) != len(params):
        raise ValueError("two mlip parameters map to the same array")
    ours = len(jax.tree.leaves(eqx.filter(network, eqx.is_array)))
    if ours != len(paths):
        raise ValueError(f"{len(paths)} mlip arrays for our {ours}")
    for path, value in paths.items():
        network = _set(network, lambda n, path=path: _resolve(n, path), value)
    return network


MODELS = {
    "nequip": ParityModel(
        mlip_class="Nequip",
        config={
            "num_layers": 4,
            "node_irreps": "16x0e + 8x0o + 8x1e + 6x1o + 4x2e + 4x2o",
            "l_max": 3,
            "num_bessel": 6,
            "radial_net_n_hidden": 16,
            "radial_net_n_layers": 2,
            "scalar_mlp_std": 4.0,
        },
        network_class="Nequip",
        map_weights=map_nequip_weights,
    ),
    "visnet": ParityModel(
        mlip_class="Visnet",
        config={
            "num_layers": 3,  # the middle layer's edge update runs
            "num_channels": 16,
            "l_max": 2,
            "num_heads": 2,
            "num_rbf": 8,
        },
        network_class="Visnet",
        map_weights=map_visnet_weights,
        mlip_module="mlip.models",
        mlip_only_config={"use_legacy_visnet": False},
    ),
    # The other code paths: l_max 1 (the edge update's rejection term does not
    # cancel), a middle layer, trained radial basis, both vector norms, other
    # activations, two readout heads.
    "visnet-variants": ParityModel(
        mlip_class="Visnet",
        config={
            "num_layers": 3,
            "num_channels": 12,
            "l_max": 1,
            "num_heads": 3,
            "num_rbf": 6,
            "trainable_rbf": True,
            "vecnorm_type": "rms",
            "attn_activation": "tanh",
            "num_readout_heads": 2,
        },
        network_class="Visnet",
        map_weights=map_visnet_weights,
        mlip_module="mlip.models",
        mlip_only_config={"use_legacy_visnet": False},
    ),
    "visnet-max-min": ParityModel(
        mlip_class="Visnet",
        config={
            "num_layers": 2,
            "num_channels": 8,
            "l_max": 2,
            "num_heads": 4,
            "num_rbf": 4,
            "vecnorm_type": "max_min",
            "activation": "tanh",
        },
        network_class="Visnet",
        map_weights=map_visnet_weights,
        mlip_module="mlip.models",
        mlip_only_config={"use_legacy_visnet": False},
    ),
}


# ----------------------------------------------------------------- child side


def run_child(work: Path) -> None:
    """In mlip's interpreter: mlip's network, its weights and node energies."""
    import importlib
    import importlib.metadata

    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from mlip.data.dataset_info import DatasetInfo

    request = json.loads((work / "inputs.json").read_text())
    info = request["dataset_info"]
    info["atomic_energies_map"] = {
        int(z): e for z, e in info["atomic_energies_map"].items()
    }
    module = importlib.import_module(request["mlip_module"])
    network_class = getattr(module, request["mlip_class"])
    network = network_class(
        network_class.Config(**request["config"]), DatasetInfo(**info)
    )
    with np.load(work / "inputs.npz") as arrays:
        inputs = [
            {
                k: arrays[f"{i}_{k}"]
                for k in ("edge_vectors", "species", "senders", "receivers")
            }
            for i in range(request["num_structures"])
        ]
    if request["mlip_module"] == "mlip.models_v1":
        arguments = [
            (
                item["edge_vectors"],
                item["species"],
                item["senders"],
                item["receivers"],
            )
            for item in inputs
        ]

        def node_energies(params, item_arguments):
            return network.apply(params, *item_arguments)

    else:
        arguments = [(_mlip_graph(item),) for item in inputs]

        def node_energies(params, item_arguments):
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
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    names = ["/".join(str(key.key) for key in path) for path, _ in flat]
    energies = [np.asarray(node_energies(params, item)) for item in arguments]
    np.savez(
        work / "mlip_arrays.npz",
        **{f"param_{i}": np.asarray(value) for i, (_, value) in enumerate(flat)},
        **{f"energies_{i}": e for i, e in enumerate(energies)},
    )
    (work / "mlip_output.json").write_text(
        json.dumps(
            {
                "names": names,
                "num_parameters": int(sum(np.size(v) for _, v in flat)),
                "mlip_version": importlib.metadata.version("mlip"),
            }
        )
    )


# mlip's batches end with a padding graph (jraph's convention); ours has one node.
_PADDING_NODES = 1


def _mlip_graph(item: dict):
    """An mlip ``Graph`` of one structure whose edge vectors are exactly
    ``item["edge_vectors"]``: all positions at the origin, the unit cell, and the
    edge vectors as the cell shifts; then a padding graph."""
    import numpy as np
    from mlip.graph import Graph, GraphEdges, GraphGlobals, GraphNodes

    num_nodes, num_edges = len(item["species"]), len(item["senders"])
    atomic_numbers = np.asarray(ELEMENTS)[item["species"]]
    return Graph(
        nodes=GraphNodes(
            positions=np.zeros((num_nodes + _PADDING_NODES, 3)),
            atomic_numbers=np.concatenate([atomic_numbers, [ELEMENTS[0]]]),
        ),
        edges=GraphEdges(shifts=item["edge_vectors"]),
        globals=GraphGlobals(cell=np.stack([np.eye(3)] * 2), weight=np.ones(2)),
        n_node=np.array([num_nodes, _PADDING_NODES]),
        n_edge=np.array([num_edges, 0]),
        senders=item["senders"],
        receivers=item["receivers"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="nequip")
    parser.add_argument(
        "--mlip-python",
        default="/tmp/peer_mlip/bin/python",
        help="interpreter with mlip installed",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.work_dir)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import write_record

    record = run_parity(args.model, args.mlip_python)
    print(f"{args.model}: mlip {record['mlip_version']}, float64")
    print(
        f"  parameters  ours {record['parameters_ours']:,}  "
        f"mlip {record['parameters_mlip']:,}"
    )
    print(
        "  max |node energy difference| "
        f"{record['max_abs_node_energy_difference_eV']:.3e} eV "
        f"(node energies minus E0 up to "
        f"{record['max_abs_node_energy_minus_e0_eV']:.3g} eV)"
    )
    write_record(
        Path(__file__).resolve().parent / "results" / f"mlip_parity_{args.model}.json",
        record,
    )


if __name__ == "__main__":
    main()
