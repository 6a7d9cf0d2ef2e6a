"""Same function as the original library: with mlip's weights mapped into ours, a
network gives mlip's node energies.

    python benchmarks/mlip_parity.py --model nequip \
        --mlip-python /tmp/peer_mlip/bin/python

The script runs itself in mlip's interpreter as a child (``--child``): the child
builds mlip's network (``mlip.models_v1``, the 0.1 architecture that our configs
follow) with random weights, evaluates it on the structures the parent wrote, and
writes its weights and node energies to a temporary directory; the parent maps the
weights into our network and evaluates it on the same edges, in float64. It prints
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


@dataclasses.dataclass(frozen=True)
class ParityModel:
    """One network compared with mlip.

    Attributes:
        mlip_class: Attribute of ``mlip.models_v1`` that the child builds.
        config: Config fields, named alike in mlip's and in our config.
        network_class: Our registered network name.
        map_weights: ``(our network, {mlip parameter path: array}) -> network``
            with mlip's weights.
    """

    mlip_class: str
    config: dict
    network_class: str
    map_weights: Callable


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
                    "config": model.config,
                    "dataset_info": {**DATASET_INFO, "graph_cutoff_angstrom": CUTOFF},
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
        "mlip_class": f"mlip.models_v1.{model.mlip_class}",
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
}


# ----------------------------------------------------------------- child side


def run_child(work: Path) -> None:
    """In mlip's interpreter: mlip's network, its weights and node energies."""
    import importlib.metadata

    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    import mlip.models_v1
    from mlip.data.dataset_info import DatasetInfo

    request = json.loads((work / "inputs.json").read_text())
    info = request["dataset_info"]
    info["atomic_energies_map"] = {
        int(z): e for z, e in info["atomic_energies_map"].items()
    }
    network_class = getattr(mlip.models_v1, request["mlip_class"])
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
    first = inputs[0]
    params = network.init(
        jax.random.key(MLIP_SEED),
        first["edge_vectors"],
        first["species"],
        first["senders"],
        first["receivers"],
    )
    params = jax.tree.map(lambda x: WEIGHT_SCALE * np.asarray(x, np.float64), params)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    names = ["/".join(str(key.key) for key in path) for path, _ in flat]
    energies = [
        np.asarray(
            network.apply(
                params,
                item["edge_vectors"],
                item["species"],
                item["senders"],
                item["receivers"],
            )
        )
        for item in inputs
    ]
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
