"""mlip's NequIP on the data of ``train_vs_peers``: its data sets, initial
weights, and its training step over its own batches (for ``nequip_same_init``
and ``nequip_step_parity``). Run in mlip's interpreter, except
:func:`network_params`."""

import importlib.metadata
from pathlib import Path

from benchmarks.peers import training

# An mlip batch's arrays, by our name.
BATCH_FIELDS = {
    "positions": lambda batch: batch.nodes.positions,
    "atomic_numbers": lambda batch: batch.nodes.atomic_numbers,
    "forces": lambda batch: batch.nodes.forces,
    "shifts": lambda batch: batch.edges.shifts,
    "cell": lambda batch: batch.globals.cell,
    "energy": lambda batch: batch.globals.energy,
    "weight": lambda batch: batch.globals.weight,
    "n_node": lambda batch: batch.n_node,
    "n_edge": lambda batch: batch.n_edge,
    "senders": lambda batch: batch.senders,
    "receivers": lambda batch: batch.receivers,
    "node_mask": lambda batch: batch.node_mask(),
    "graph_mask": lambda batch: batch.graph_mask(),
}


def network_params(force_field_params: dict) -> dict:
    """The network's parameters in an mlip ``ForceField``'s (those of
    ``ForceFieldPredictorV1``'s ``mlip_network``), as mlip's network stores them."""
    return {"params": force_field_params["params"]["mlip_network"]}


def mlip_nequip(work_dir: Path, seed: int) -> tuple:
    """mlip's data set builder of the train and validation files (datasets
    built), its data sets, and its NequIP force field (the 0.1 network through
    ``ForceFieldPredictorV1``) with the initial weights of ``seed``."""
    import mlip.models
    import mlip.models_v1
    import mlip.typing.properties
    from mlip.data import ExtxyzReader, GraphDatasetBuilder

    builder = GraphDatasetBuilder(
        {
            "train": ExtxyzReader(str(work_dir / "train.extxyz")),
            "valid": ExtxyzReader(str(work_dir / "valid.extxyz")),
        },
        GraphDatasetBuilder.Config(
            graph_cutoff_angstrom=training.CUTOFF_ANGSTROM,
            batch_size=training.BATCH_SIZE,
        ),
    )
    datasets = builder.get_datasets()
    predictor = mlip.models_v1.ForceFieldPredictorV1(
        mlip_network=training.network("mlip", "nequip", builder.dataset_info),
        required_properties=mlip.typing.properties.Properties(),
    )
    return builder, datasets, mlip.models.ForceField.init(predictor, seed=seed)


def initial_params(work_dir: str, seed: int) -> dict:
    """mlip's initial NequIP network parameters for ``seed`` (as
    ``train_vs_peers`` draws them)."""
    _, _, force_field = mlip_nequip(Path(work_dir), seed)
    return network_params(force_field.params)


def training_steps(
    seed: int, steps: int, epochs: int, dtype: str, work_dir: str
) -> dict:
    """mlip's training loop, built as ``train_vs_peers`` builds it: the first
    ``steps`` batches of its first epoch (or every batch of ``epochs`` epochs),
    the first batch's loss, prediction and gradients (the training step's own
    ``predictor.apply`` + loss), and, after steps 1, 10 and ``steps`` of the
    loop's jitted ``training_step``, the parameters and debiased EMA
    parameters."""
    import jax

    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import mlip.models
    import numpy as np
    from mlip import training as mlip_training
    from mlip.training.ema import get_debiased_params

    builder, datasets, force_field = mlip_nequip(Path(work_dir), seed)
    if dtype == "float64":
        force_field = mlip.models.ForceField(
            predictor=force_field.predictor,
            params=jax.tree.map(
                lambda x: jnp.asarray(x, jnp.float64), force_field.params
            ),
        )
    loss, optimizer = training.loss_and_optimizer("mlip")
    loop = mlip_training.TrainingLoop(
        train_dataset=datasets["train"],
        validation_dataset=datasets["valid"],
        force_field=force_field,
        loss=loss,
        optimizer=optimizer,
        config=mlip_training.TrainingLoop.Config(
            num_epochs=1, ema_decay=training.EMA_DECAY, random_seed=seed
        ),
    )
    epoch = 1
    batches, kept, graphs_per_batch = [], [], []
    for epoch_number in range(1, max(1, epochs) + 1):
        graphs_per_batch.append([])
        kept.append([])
        for index, batch in enumerate(loop.train_dataset):  # whole epochs
            graphs_per_batch[-1].append(int(batch.graph_mask().sum()))
            if epoch_number == 1 and index < steps:
                batches.append(batch)
            elif epochs == 0:
                continue
            kept[-1].append(
                {name: np.asarray(field(batch)) for name, field in BATCH_FIELDS.items()}
            )

    # The loss of the training step (training_step.make_train_step's model_loss).
    def model_loss(params, graph):
        prediction = loop.force_field.predictor.apply(params, graph)
        loss_value, _ = loop._loss_train(prediction, graph, epoch)
        return loss_value, prediction

    (loss0, prediction), gradients = jax.jit(
        jax.value_and_grad(model_loss, has_aux=True)
    )(loop.training_state.params, batches[0])
    state, step_metrics, after = loop.training_state, [], {}
    wanted = sorted({1, min(10, len(batches)), len(batches)})
    for step, batch in enumerate(batches, start=1):
        state, metrics = loop.training_step(state, batch, epoch)
        step_metrics.append(
            {
                k: float(metrics[k])
                for k in ("loss", "gradient_norm", "param_update_norm")
            }
        )
        if step in wanted:
            after[step] = {
                "params": network_params(state.params),
                "ema": network_params(
                    get_debiased_params(state.ema_state, loop.config.ema_decay)
                ),
            }
    info = builder.dataset_info
    return {
        "mlip_version": importlib.metadata.version("mlip"),
        "param_dtype": str(jax.tree.leaves(loop.training_state.params)[0].dtype),
        "num_batches": len(batches),
        "checkpoints": wanted,
        "batches_by_epoch": kept,
        "prediction": {
            "energy": prediction.globals.energy,
            "forces": prediction.nodes.forces,
        },
        "initial": network_params(loop.training_state.params),
        "gradients": network_params(gradients),
        "after_steps": after,
        "loss0": float(loss0),
        "step_metrics": step_metrics,
        "avg_n_graphs_per_batch": loop.total_num_graphs / len(loop.train_dataset),
        "graphs_per_batch_by_epoch": graphs_per_batch,
        "dataset_info": {
            "atomic_energies_map": {
                str(z): float(e) for z, e in info.atomic_energies_map.items()
            },
            "graph_cutoff_angstrom": info.graph_cutoff_angstrom,
            "avg_num_neighbors": info.avg_num_neighbors,
            "avg_r_min_angstrom": info.avg_r_min_angstrom,
            "scaling_mean": info.scaling_mean,
            "scaling_stdev": info.scaling_stdev,
            "atomic_energies_removed": bool(
                getattr(info, "atomic_energies_removed", False)
            ),
        },
    }
