"""Same function as the original library: with mlip's weights mapped into ours, a
network gives mlip's node energies.

    python -m benchmarks.mlip_parity --model nequip|visnet|visnet-variants \
        --mlip-python /tmp/peer_mlip/bin/python

mlip's interpreter (``peers.mlip_networks``) builds mlip's network with random
weights (from ``mlip.models_v1``, the 0.1 architecture that our MACE and NequIP
follow, called on edge arrays; or from ``mlip.models``, the 0.2 networks such as
ViSNet, called on a ``Graph``) and evaluates it on the edges of a molecule and a
triclinic cell; its weights are mapped into our network with
``mlip_eqx.models.convert``, which is evaluated on the same edges, in float64.
Prints both parameter counts and the largest |node energy difference| and writes
JSON to ``benchmarks/results/mlip_parity_<model>.json``. A model is added with an
entry in ``MODELS``.
"""

import dataclasses
from collections.abc import Callable
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # before mlip_eqx makes any array

from benchmarks.harness import argument_parser, run_in_child, write_record  # noqa: E402
from benchmarks.peers import mlip_networks  # noqa: E402
from mlip_eqx.models.convert import (  # noqa: E402
    nequip_from_mlip_params,
    visnet_from_mlip_params,
)

ELEMENTS = (1, 6, 8)  # H, C, O
CUTOFF = 4.0  # Å
DATASET_INFO = {
    "atomic_energies_map": {1: -1.5, 6: -3.25, 8: -2.0},
    "avg_num_neighbors": 9.0,
    "scaling_mean": 0.3,
    "scaling_stdev": 1.7,
}


@dataclasses.dataclass(frozen=True)
class ParityModel:
    """One network compared with mlip.

    Attributes:
        mlip_class: Attribute of ``mlip_module`` that mlip's interpreter builds.
        config: Config fields, named alike in mlip's and in our config.
        network_class: Our registered network name.
        map_weights: ``(our network, mlip's parameters) -> network`` with them.
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


def run_parity(model_name: str, mlip_python: str) -> dict:
    import equinox as eqx
    import numpy as np

    from mlip_eqx.data.dataset_info import DatasetInfo
    from mlip_eqx.models.registry import get_network_class

    model = MODELS[model_name]
    inputs = graph_inputs(structures())
    mlip = run_in_child(
        mlip_networks.node_energies,
        model.mlip_module,
        model.mlip_class,
        {**model.config, **model.mlip_only_config},
        {**DATASET_INFO, "graph_cutoff_angstrom": CUTOFF},
        ELEMENTS,
        inputs,
        python=mlip_python,
    ).value
    info = DatasetInfo(
        atomic_energies_map=DATASET_INFO["atomic_energies_map"],
        cutoff_distance_angstrom=CUTOFF,
        avg_num_neighbors=DATASET_INFO["avg_num_neighbors"],
        scaling_mean=DATASET_INFO["scaling_mean"],
        scaling_stdev=DATASET_INFO["scaling_stdev"],
    )
    network_class = get_network_class(model.network_class)
    network = network_class(network_class.Config(**model.config), info)
    network = model.map_weights(network, mlip["params"])
    differences, interactions = [], []
    e0 = np.array([DATASET_INFO["atomic_energies_map"][z] for z in ELEMENTS])
    for item, expected in zip(inputs, mlip["node_energies"], strict=True):
        ours = network(
            item["edge_vectors"], item["species"], item["senders"], item["receivers"]
        )
        differences.append(float(np.max(np.abs(np.asarray(ours) - expected))))
        interactions.append(float(np.max(np.abs(expected - e0[item["species"]]))))
    arrays = jax.tree.leaves(eqx.filter(network, eqx.is_array))
    return {
        "model": model_name,
        "mlip_class": f"{model.mlip_module}.{model.mlip_class}",
        "mlip_only_config": model.mlip_only_config,
        "mlip_version": mlip["mlip_version"],
        "config": model.config,
        "dtype": "float64",
        "num_structures": len(inputs),
        "num_atoms": [len(item["species"]) for item in inputs],
        "parameters_ours": sum(leaf.size for leaf in arrays),
        "parameters_mlip": mlip["num_parameters"],
        "max_abs_node_energy_difference_eV": max(differences),
        "max_abs_node_energy_minus_e0_eV": max(interactions),
    }


_VISNET = {"network_class": "Visnet", "map_weights": visnet_from_mlip_params,
           "mlip_module": "mlip.models",
           "mlip_only_config": {"use_legacy_visnet": False}}  # fmt: skip
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
        map_weights=nequip_from_mlip_params,
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
        **_VISNET,
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
        **_VISNET,
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
        **_VISNET,
    ),
}


def main() -> None:
    parser = argument_parser(__doc__, "mlip_parity_{model}")
    parser.add_argument("--model", choices=sorted(MODELS), default="nequip")
    parser.add_argument(
        "--mlip-python",
        default="/tmp/peer_mlip/bin/python",
        help="interpreter with mlip installed",
    )
    args = parser.parse_args()
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
    write_record(Path(str(args.output).format(model=args.model)), record)


if __name__ == "__main__":
    main()
