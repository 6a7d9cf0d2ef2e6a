"""Training runs of the multi-process tests, each in its own Python process.

``python -m tests.helpers.multi_process_training distributed PROCESS_ID PORT OUT``
is one process of a two-process run (one CPU device each) that trains the small
pair model of ``tests/training/test_training_loop.py`` for two epochs, with
checkpoints in ``OUT/run``; ``... local OUT`` trains the same in one process on 2
devices, on 1 device, and on 1 device resumed from the two-process run's
checkpoint of epoch 1. Each writes its final parameters and records to ``OUT``.
"""

import json
import os
import shutil
import sys
from pathlib import Path

NUM_EPOCHS = 2
BATCHES_PER_STEP = 2


def recording_graphs(graphs):
    """StoredGraphs (as ``ShardedGraphs``) that record which structures were
    read, in ``reads``."""
    import numpy as np

    from mlip_eqx.data.stored_graphs import StoredGraphs

    class RecordingGraphs(StoredGraphs):
        def __init__(self, graphs):
            self._graphs = list(graphs)
            self.reads: list[int] = []

        @property
        def num_nodes_per_graph(self):
            return np.array([int(g.n_node[0]) for g in self._graphs])

        @property
        def num_edges_per_graph(self):
            return np.array([int(g.n_edge[0]) for g in self._graphs])

        @property
        def sources(self):
            return [f"structure {i}" for i in range(len(self._graphs))]

        def __len__(self) -> int:
            return len(self._graphs)

        def __getitem__(self, index: int):
            self.reads.append(int(index))
            return self._graphs[index]

    return RecordingGraphs(graphs)


def train(out: Path, name: str, should_parallelize: bool, io_config=None) -> dict:
    """Trains the test model; writes ``<name>.npz`` (parameters) and returns what
    the test checks."""
    import jax
    import numpy as np

    from mlip_eqx.data import GraphDataset
    from mlip_eqx.training import TrainingIOHandler
    from mlip_eqx.training.distributed import is_primary_process
    from mlip_eqx.training.training_io_handler import LogCategory
    from tests.training.test_training_loop import build_splits_and_info, make_loop

    (train_set, validation, test), info = build_splits_and_info()
    recording = recording_graphs(train_set.graphs)
    train_set = GraphDataset(
        recording, batch_size=train_set.batch_size, seed=train_set.seed
    )
    records = []
    handler = TrainingIOHandler(io_config)
    handler.attach_logger(lambda c, m, e: records.append((c.name, e, dict(m))))
    loop = make_loop(
        (train_set, validation, test),
        info,
        NUM_EPOCHS,
        handler,
        should_parallelize=should_parallelize,
        batches_per_step=BATCHES_PER_STEP,
    )
    resumed_from = loop.epoch_number
    loop.run()
    params = jax.tree.leaves(jax.device_get(loop.training_state.params))
    if is_primary_process():
        np.savez(out / f"{name}.npz", *params)
    return {
        "reads": recording.reads,
        "num_steps": int(loop.training_state.num_steps),
        "mesh_size": int(loop.mesh.devices.size),
        "records": [r for r in records if r[0] == LogCategory.EVAL_METRICS.name],
        "resumed_from": resumed_from,
    }


def distributed(process_id: int, port: int, out: Path) -> None:
    from mlip_eqx.training.distributed import (
        DistributedConfig,
        initialize_distributed,
    )

    initialize_distributed(DistributedConfig(f"localhost:{port}", 2, process_id))
    import jax

    from mlip_eqx.training import TrainingIOHandler

    assert jax.local_device_count() == 1 and jax.device_count() == 2
    config = TrainingIOHandler.Config(local_model_output_dir=out / "run")
    result = train(out, "two_processes", True, config)
    (out / f"process_{process_id}.json").write_text(json.dumps(result))


def local(out: Path) -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = flags + " --xla_force_host_platform_device_count=2"
    import jax

    from mlip_eqx.training import TrainingIOHandler

    assert jax.device_count() == 2
    from mlip_eqx.training.device_batches import batches_per_device
    from mlip_eqx.training.mesh import make_mesh
    from mlip_eqx.utils.config import ConfigError

    try:
        batches_per_device(make_mesh(), 3)
        odd_batches_per_step = "accepted"
    except ConfigError as error:
        odd_batches_per_step = str(error)
    results = {
        "odd_batches_per_step": odd_batches_per_step,
        "two_devices": train(out, "two_devices", True),
        "one_device": train(out, "one_device", False),
    }
    # Resume the two-process run's epoch 1 on one device (a copy: resuming
    # deletes the later checkpoints).
    shutil.copytree(out / "run", out / "resumed")
    config = TrainingIOHandler.Config(
        local_model_output_dir=out / "resumed",
        restore_checkpoint_if_exists=True,
        restore_optimizer_state=True,
        epoch_to_restore=1,
    )
    results["resumed_on_one_device"] = train(
        out, "resumed_on_one_device", False, config
    )
    (out / "local.json").write_text(json.dumps(results))


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    if sys.argv[1] == "distributed":
        distributed(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
    else:
        local(Path(sys.argv[2]))
