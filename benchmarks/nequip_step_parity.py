"""Same training step as mlip: loss, gradients, optimizer (clipping, AMSGrad,
schedule) and EMA of mlip_eqx and mlip 0.2.5 compared for the same weights and
the same batches.

Usage:
    python -m benchmarks.nequip_step_parity [--seed 7] [--steps 30]
        [--dtype float32|float64] [--epochs 0]
        [--mlip-python /tmp/peer_mlip/bin/python] [--work-dir /tmp/train_vs_peers]
        [--skip-dataset-info]
        [--output benchmarks/results/nequip_step_parity_<dtype>.json]

Data, model and training settings are those of ``train_vs_peers --model
nequip`` (NequIP 32x0e + 32x0o + 16x1o + 16x1e, l_max 2, 2 layers; MSE loss with
energy weight 1, forces 25, stress 0; the default MLIP optimizer at a constant
lr 0.01 without warm-up; EMA 0.99; batch size 8).

mlip's interpreter (``peers.mlip_nequip.training_steps``) builds mlip's data
sets from ``train.extxyz``, draws mlip's initial weights for ``--seed``, builds
mlip's ``TrainingLoop`` exactly as ``train_vs_peers`` does and takes the first
``--steps`` batches of its first epoch. It computes the loss, the prediction
and the parameter gradients of the first batch (the training step's own
``predictor.apply`` + loss), then runs the loop's own jitted ``training_step``
over the batches, and passes back the batches, the dataset info, the gradients
and the parameters and debiased EMA parameters after steps 1, 10 and
``--steps``. The parent converts each of mlip's batches to our ``Graph`` (same
nodes, edges, shifts, labels and padding; mlip's padding graph moved last,
where ours keeps it, past any empty graphs), maps mlip's weights into our
NequIP with ``mlip_eqx.models.convert.nequip_from_mlip_params`` (checked to be
a bijection of the array entries), builds our force field with mlip's dataset
info, and runs our ``loss_and_gradients`` and ``make_train_step`` (optimizer
from ``get_default_mlip_optimizer``, state from ``init_training_state``) on the
same batches. mlip's gradients and parameters are mapped with the same map and
compared leaf by leaf (max |difference|, and relative to the leaf's max
|value|). With ``--dtype float64`` both sides run with ``jax_enable_x64`` and
float64 weights, so that float rounding is out of the way. It also prints our
own builder's dataset info next to mlip's. Writes JSON.

With ``--epochs N`` the child also passes back every batch of mlip's first N epochs
(its order and its batching, which closes a batch early when the next graph
would overflow its edge budget), and the parent trains ours on exactly those
batches from mlip's initial weights, evaluating the EMA parameters on the
validation set (our evaluation) after every epoch, next to mlip's own curve for
the seed recorded in ``results/train_vs_peers_nequip_5seeds.json`` (same data
set seed, so the same batches).
"""

import json
from pathlib import Path

from benchmarks.harness import argument_parser, run_in_child, write_record
from benchmarks.harness.report import RESULTS
from benchmarks.peers import mlip_nequip, training


def our_graph(a: dict, z_to_species):
    """mlip's padded batch as our Graph: the same nodes, edges and labels.

    mlip (jraph's convention) puts one padding graph holding every padding node
    and edge right after the real graphs, then empty graphs; padding edges join
    the first padding node to itself. Ours keeps the padding graph last and joins
    the last node to itself: the empty graphs own no nodes or edges, so moving
    them before the padding graph changes no node or edge index.
    """
    import numpy as np

    from mlip_eqx.graph.graph import Graph

    graph_mask = a["graph_mask"].astype(bool)
    node_mask = a["node_mask"].astype(bool)
    padding = np.flatnonzero(~graph_mask)
    real = np.flatnonzero(graph_mask)
    if not (np.all(real < padding[0]) and np.all(a["n_node"][padding[1:]] == 0)):
        raise ValueError("unexpected padding layout")
    if np.any(a["n_edge"][padding[1:]] != 0):
        raise ValueError("empty padding graphs with edges")
    order = np.concatenate([real, padding[1:], padding[:1]])
    num_nodes, num_edges = len(node_mask), len(a["senders"])
    real_edges = int(a["n_edge"][real].sum())
    senders = np.asarray(a["senders"], np.int32).copy()
    receivers = np.asarray(a["receivers"], np.int32).copy()
    senders[real_edges:] = num_nodes - 1
    receivers[real_edges:] = num_nodes - 1
    shifts = np.asarray(a["shifts"])
    if not np.array_equal(shifts, np.round(shifts)):
        raise ValueError("non-integer cell shifts")
    species = np.where(node_mask, z_to_species[a["atomic_numbers"]], 0)
    energy = np.asarray(a["energy"], np.float64)[order]
    forces = np.asarray(a["forces"], np.float64)
    labelled = graph_mask[order]
    return Graph(
        positions=np.asarray(a["positions"], np.float64),
        species=species.astype(np.int32),
        senders=senders,
        receivers=receivers,
        shifts=shifts.astype(np.int32),
        cell=np.asarray(a["cell"], np.float64)[order],
        n_node=np.asarray(a["n_node"], np.int32)[order],
        n_edge=np.asarray(a["n_edge"], np.int32)[order],
        energy=np.where(labelled, energy, 0.0),
        forces=np.where(node_mask[:, None], forces, 0.0),
        stress=np.zeros((len(order), 3, 3)),
        weight=np.asarray(a["weight"], np.float64)[order],
        dataset_idx=np.zeros(len(order), np.int32),
        has_energy=labelled & np.isfinite(energy),
        has_forces=labelled.copy(),
        has_stress=np.zeros(len(order), bool),
        node_mask=node_mask,
        edge_mask=np.arange(num_edges) < real_edges,
        graph_mask=labelled,
        paired_edges=False,
    )


def compare(ours, theirs) -> dict:
    """Leaf-by-leaf max |difference| of two PyTrees of one structure."""
    import jax
    import numpy as np

    paths = jax.tree_util.tree_flatten_with_path(ours)[0]
    leaves = jax.tree.leaves(theirs)
    rows, squared_difference, squared_norm = [], 0.0, 0.0
    for (path, a), b in zip(paths, leaves, strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        difference = np.abs(a - b)
        scale = float(np.max(np.abs(b)))
        rows.append(
            {
                "leaf": jax.tree_util.keystr(path),
                "max_abs_difference": float(difference.max()),
                "max_abs_value": scale,
                "relative": float(difference.max() / scale) if scale > 0 else 0.0,
            }
        )
        squared_difference += float(np.sum(difference**2))
        squared_norm += float(np.sum(b**2))
    worst = max(rows, key=lambda row: row["relative"])
    return {
        "max_abs_difference": max(row["max_abs_difference"] for row in rows),
        "max_relative_per_leaf": worst["relative"],
        "worst_leaf": worst["leaf"],
        "global_relative": (squared_difference / squared_norm) ** 0.5,
        "leaves": rows,
    }


def check_map_is_bijection(network, mlip_params: dict) -> int:
    """Maps distinct integers through ``nequip_from_mlip_params``: every entry of
    every mlip array must land in exactly one entry of ours. Returns the count."""
    import equinox as eqx
    import jax
    import numpy as np

    from mlip_eqx.models.convert import nequip_from_mlip_params

    leaves, structure = jax.tree.flatten(mlip_params)
    ids, offset = [], 0
    for leaf in leaves:
        ids.append(np.arange(offset, offset + leaf.size, dtype=np.float64))
        offset += leaf.size
    ids = [block.reshape(leaf.shape) for block, leaf in zip(ids, leaves)]
    mapped = nequip_from_mlip_params(network, jax.tree.unflatten(structure, ids))
    values = np.concatenate(
        [np.ravel(leaf) for leaf in jax.tree.leaves(eqx.filter(mapped, eqx.is_array))]
    )
    if not np.array_equal(np.sort(values), np.arange(offset)):
        raise AssertionError("the NequIP map is not a bijection of the entries")
    return offset


def train_on_mlip_batches(
    args, child: dict, force_field, z_to_species, validation_set
) -> dict:
    """Our training step over every batch of mlip's first ``--epochs`` epochs
    (mlip's order and batching), from mlip's initial weights; validation force
    MAE of the EMA parameters after each epoch (our evaluation, our batches of
    the validation set), next to mlip's own run of the seed recorded by
    ``train_vs_peers``."""

    from mlip_eqx.graph.batching import stack_graphs
    from mlip_eqx.training.ema import debiased_ema_params
    from mlip_eqx.training.mesh import make_mesh
    from mlip_eqx.training.training_loop import evaluate
    from mlip_eqx.training.training_state import init_training_state
    from mlip_eqx.training.training_step import make_eval_step, make_train_step

    loss, optimizer = training.loss_and_optimizer("mlip_eqx")
    mesh = make_mesh()
    state = init_training_state(
        force_field, optimizer, args.seed, mesh, training.EMA_DECAY
    )
    train_step = make_train_step(force_field, loss, optimizer, mesh)
    eval_step = make_eval_step(force_field, loss, mesh)
    curve = []
    for epoch, batches in enumerate(child["batches_by_epoch"], start=1):
        for batch in batches:
            graph = our_graph(batch, z_to_species)
            state, _ = train_step(state, stack_graphs([graph]), epoch)
        params = debiased_ema_params(state.ema_state)
        metrics = evaluate(eval_step, params, validation_set, mesh, epoch)
        curve.append(1e3 * metrics["mae_f"])
        print(f"  epoch {epoch}: {len(batches)} steps, validation force MAE "
              f"{curve[-1]:.2f} meV/Å")  # fmt: skip
    recorded = {}
    peers = RESULTS / "train_vs_peers_nequip_5seeds.json"
    if peers.is_file():
        runs = json.loads(peers.read_text())["runs"]
        for library, key in (("mlip", "mlip"), ("mlip_eqx", "mlip_eqx_own_init")):
            for run in runs.get(library, []):
                if run["seed"] == args.seed:
                    recorded[key] = [1e3 * e["valid_mae_f"] for e in run["epochs"]]
    same_init = RESULTS / "nequip_same_init.json"
    if same_init.is_file():
        record = json.loads(same_init.read_text())
        if record["seed"] == args.seed:
            recorded["mlip_eqx_mlip_init_own_batches"] = record[
                "valid_mae_f_mev_by_epoch"
            ]
    return {
        "epochs": len(curve),
        "steps_per_epoch_mlip_batches": [
            len(c) for c in child["graphs_per_batch_by_epoch"]
        ],
        "valid_mae_f_mev_by_epoch": curve,
        "recorded_valid_mae_f_mev_by_epoch": recorded,
    }


def run_parent(args) -> dict:
    import numpy as np

    child = run_in_child(
        mlip_nequip.training_steps, args.seed, args.steps, args.epochs, args.dtype,
        args.work_dir, python=args.mlip_python,
    ).value  # fmt: skip

    # Only now, with mlip's child done: one JAX process at a time.
    import equinox as eqx
    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    from mlip_eqx.data.dataset_info import DatasetInfo
    from mlip_eqx.data.graph_creation import species_table
    from mlip_eqx.graph.batching import stack_graphs
    from mlip_eqx.models import ForceField
    from mlip_eqx.models.convert import nequip_from_mlip_params
    from mlip_eqx.training.mesh import make_mesh
    from mlip_eqx.training.training_state import init_training_state
    from mlip_eqx.training.training_step import (
        loss_and_gradients,
        make_train_step,
        shard_step,
    )

    mlip_info = child["dataset_info"]
    info = DatasetInfo(
        atomic_energies_map={
            int(z): e for z, e in mlip_info["atomic_energies_map"].items()
        },
        cutoff_distance_angstrom=mlip_info["graph_cutoff_angstrom"],
        avg_num_neighbors=mlip_info["avg_num_neighbors"],
        avg_r_min_angstrom=mlip_info["avg_r_min_angstrom"],
        scaling_mean=mlip_info["scaling_mean"],
        scaling_stdev=mlip_info["scaling_stdev"],
    )
    network = training.network("mlip_eqx", "nequip", info)

    def mapped(mlip_params: dict):
        """mlip's network parameters as our trainable PyTree."""
        return ForceField(nequip_from_mlip_params(network, mlip_params)).params

    num_entries = check_map_is_bijection(network, child["initial"])
    force_field = ForceField(nequip_from_mlip_params(network, child["initial"]), False)
    dtype = str(force_field.dtype)
    z_to_species = species_table(list(info.atomic_energies_map))
    first_epoch = child["batches_by_epoch"][0][: child["num_batches"]]
    graphs = [our_graph(batch, z_to_species) for batch in first_epoch]
    loss, optimizer = training.loss_and_optimizer("mlip_eqx")
    padding = []
    for graph, batch in zip(graphs, first_epoch, strict=True):
        mask = batch["graph_mask"]
        padding.append(
            {
                "n_graph": int(graph.num_graphs),
                "real_graphs_mlip": int(mask.sum()),
                "n_node": int(graph.num_nodes),
                "real_nodes": int(graph.node_mask.sum()),
                "n_edge": int(graph.num_edges),
                "real_edges": int(graph.edge_mask.sum()),
                "loss_counts_ours": [float(c) for c in loss.term_counts(graph)],
            }
        )

    epoch = 1
    # First batch: prediction, and the gradient through the training step's path.
    prediction = eqx.filter_jit(force_field)(graphs[0])
    node_mask = graphs[0].node_mask
    graph_mask = first_epoch[0]["graph_mask"].astype(bool)
    prediction_difference = {
        "energy_eV": float(
            np.max(
                np.abs(
                    np.asarray(prediction.energy)[: graph_mask.sum()]
                    - child["prediction"]["energy"][graph_mask]
                )
            )
        ),
        "forces_eV_per_A": float(
            np.max(
                np.abs(
                    np.asarray(prediction.forces)[node_mask]
                    - child["prediction"]["forces"][node_mask]
                )
            )
        ),
    }

    def gradient_step(params, batches, epoch, *, architecture, loss):
        return loss_and_gradients(params, architecture, loss, batches, epoch)

    mesh = make_mesh()
    gradient_fn = shard_step(
        gradient_step, mesh, architecture=force_field.partition()[1], loss=loss
    )
    gradients, metrics = gradient_fn(
        force_field.params, stack_graphs([graphs[0]]), epoch
    )
    loss0 = metrics["loss"].result()
    stages = {
        "loss_first_batch": {
            "ours": loss0,
            "mlip": child["loss0"],
            "abs_difference": abs(loss0 - child["loss0"]),
            "relative": abs(loss0 - child["loss0"]) / abs(child["loss0"]),
        },
        "prediction_first_batch_max_abs": prediction_difference,
        "gradients_first_batch": compare(gradients, mapped(child["gradients"])),
    }

    # The training steps.
    state = init_training_state(
        force_field,
        optimizer,
        seed=args.seed,
        mesh=mesh,
        ema_decay=training.EMA_DECAY,
    )
    train_step = make_train_step(force_field, loss, optimizer, mesh)
    step_metrics = []
    for step, graph in enumerate(graphs, start=1):
        state, metrics = train_step(state, stack_graphs([graph]), epoch)
        ours = {
            "loss": metrics["loss"].result(),
            "gradient_norm": metrics["gradient_norm"].result(),
            "param_update_norm": metrics["param_update_norm"].result(),
        }
        theirs = dict(child["step_metrics"][step - 1])
        # mlip logs loss * n_graphs / (average graphs per batch) (its
        # metrics_reweighting; the gradient is of the plain loss): undone here.
        theirs["loss"] *= child["avg_n_graphs_per_batch"] / float(
            np.sum(first_epoch[step - 1]["graph_mask"])
        )
        step_metrics.append(
            {
                "step": step,
                **{f"{k}_ours": v for k, v in ours.items()},
                **{f"{k}_mlip": theirs[k] for k in ours},
            }
        )
        if step in child["checkpoints"]:
            after = child["after_steps"][str(step)]
            params = jax.tree.map(np.asarray, state.params)
            ema = jax.tree.map(np.asarray, state.ema_state.params_ema)
            stages[f"params_after_{step}_steps"] = compare(
                params, mapped(after["params"])
            )
            stages[f"ema_after_{step}_steps"] = compare(ema, mapped(after["ema"]))
            update_ours = jax.tree.map(
                lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64),
                params,
                force_field.params,
            )
            update_mlip = jax.tree.map(
                lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64),
                mapped(after["params"]),
                force_field.params,
            )
            stages[f"param_change_after_{step}_steps"] = compare(
                update_ours, update_mlip
            )

    # Our own builder's dataset statistics for the same files.
    ours_info, on_mlip_batches = None, None
    if not args.skip_dataset_info or args.epochs > 0:
        from mlip_eqx import data

        reader = data.ExtxyzReader(
            data.ExtxyzReader.Config(
                train_dataset_paths=str(args.work_dir / "train.extxyz"),
                valid_dataset_paths=str(args.work_dir / "valid.extxyz"),
            )
        )
        builder = data.GraphDatasetBuilder(
            reader,
            data.GraphDatasetBuilder.Config(
                graph_cutoff_angstrom=training.CUTOFF_ANGSTROM,
                batch_size=training.BATCH_SIZE,
            ),
        )
        builder.prepare_datasets()
        i = builder.dataset_info
        ours_info = {
            "atomic_energies_map": {
                str(z): float(e) for z, e in i.atomic_energies_map.items()
            },
            "graph_cutoff_angstrom": i.cutoff_distance_angstrom,
            "avg_num_neighbors": i.avg_num_neighbors,
            "avg_r_min_angstrom": i.avg_r_min_angstrom,
            "scaling_mean": i.scaling_mean,
            "scaling_stdev": i.scaling_stdev,
        }
    if args.epochs > 0:
        on_mlip_batches = train_on_mlip_batches(
            args, child, force_field, z_to_species, builder.get_splits()[1]
        )
    return {
        "seed": args.seed,
        "steps": child["num_batches"],
        "dtype": dtype,
        "mlip_param_dtype": child["param_dtype"],
        "mlip_version": child["mlip_version"],
        "parameter_entries_mapped": num_entries,
        "avg_n_graphs_per_batch_mlip": child["avg_n_graphs_per_batch"],
        "mlip_first_epoch": {
            "num_batches": len(child["graphs_per_batch_by_epoch"][0]),
            "batches_by_real_graphs": {
                str(n): child["graphs_per_batch_by_epoch"][0].count(n)
                for n in sorted(set(child["graphs_per_batch_by_epoch"][0]))
            },
        },
        "training_on_mlip_batches": on_mlip_batches,
        "padding_per_batch": padding,
        "dataset_info_mlip": mlip_info,
        "dataset_info_ours": ours_info,
        "stages": stages,
        "step_metrics": step_metrics,
    }


def print_report(record: dict) -> None:
    print(
        f"NequIP step parity, seed {record['seed']}, {record['steps']} steps, "
        f"{record['dtype']} (mlip {record['mlip_version']} params "
        f"{record['mlip_param_dtype']}); {record['parameter_entries_mapped']:,} "
        "parameter entries mapped one to one"
    )
    shapes = {
        (p["n_graph"], p["real_graphs_mlip"], p["n_node"], p["real_nodes"],
         p["n_edge"], tuple(p["loss_counts_ours"]))
        for p in record["padding_per_batch"]
    }  # fmt: skip
    print(
        "batches (n_graph, real graphs, n_node, real nodes, n_edge, our loss "
        f"counts E/F/S): {sorted(shapes)}; mlip's average graphs per batch "
        f"{record['avg_n_graphs_per_batch_mlip']:.3f}; mlip's first epoch: "
        f"{record['mlip_first_epoch']['num_batches']} batches, by real graphs "
        f"{record['mlip_first_epoch']['batches_by_real_graphs']}"
    )
    stages = record["stages"]
    first = stages["loss_first_batch"]
    print(
        f"loss, first batch: ours {first['ours']:.10g}  mlip {first['mlip']:.10g}  "
        f"relative difference {first['relative']:.2e}"
    )
    p = stages["prediction_first_batch_max_abs"]
    print(
        f"prediction, first batch: max |dE| {p['energy_eV']:.2e} eV, "
        f"max |dF| {p['forces_eV_per_A']:.2e} eV/Å"
    )
    print(
        f"{'stage':30s} {'max |diff|':>11s} {'max rel/leaf':>13s} "
        f"{'||diff||/||x||':>15s}  worst leaf"
    )
    for name, stage in stages.items():
        if "leaves" not in stage:
            continue
        print(
            f"{name:30s} {stage['max_abs_difference']:11.3e} "
            f"{stage['max_relative_per_leaf']:13.3e} {stage['global_relative']:15.3e}"
            f"  {stage['worst_leaf']}"
        )
    print(
        "per step: loss ours / mlip (mlip's logged loss without its reweighting) "
        "| gradient norm ours / mlip"
    )
    for m in record["step_metrics"]:
        if m["step"] <= 3 or m["step"] % 10 == 0 or m["step"] == record["steps"]:
            print(
                f"  step {m['step']:3d}: {m['loss_ours']:.8g} / {m['loss_mlip']:.8g}"
                f" | {m['gradient_norm_ours']:.8g} / {m['gradient_norm_mlip']:.8g}"
            )
    training = record["training_on_mlip_batches"]
    if training is not None:
        print(
            "validation force MAE (meV/Å) by epoch; ours on mlip's batches "
            f"({training['steps_per_epoch_mlip_batches']} steps): "
            + ", ".join(f"{v:.2f}" for v in training["valid_mae_f_mev_by_epoch"])
        )
        for name, curve in training["recorded_valid_mae_f_mev_by_epoch"].items():
            print(f"  recorded {name}: " + ", ".join(f"{v:.2f}" for v in curve))
    ours, mlip = record["dataset_info_ours"], record["dataset_info_mlip"]
    if ours is not None:
        print("dataset info: ours | mlip")
        for key in ours:
            print(f"  {key}: {ours[key]} | {mlip[key]}")


def main() -> None:
    parser = argument_parser(
        __doc__, "nequip_step_parity_{dtype}", work_dir="/tmp/train_vs_peers"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument(
        "--epochs",
        type=int,
        default=0,
        help="also train ours on all of mlip's batches of this many epochs",
    )
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--mlip-python", default="/tmp/peer_mlip/bin/python")
    parser.add_argument("--skip-dataset-info", action="store_true")
    args = parser.parse_args()
    if not (args.work_dir / "train.extxyz").is_file():
        training.prepare_data(args.work_dir)
    record = run_parent(args)
    print_report(record)
    write_record(Path(str(args.output).format(dtype=args.dtype)), record)


if __name__ == "__main__":
    main()
