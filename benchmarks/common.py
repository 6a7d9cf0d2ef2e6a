"""The training setup of ``train_step`` and ``profile_train_step``."""


def demo_training_setup(num_devices: int, model: str = "mace") -> tuple:
    """A network (cutoff 5 Å, batch 8 per device) on the demo data: (train_step,
    state, device batches, force_field).

    ``model``: "mace" (32 channels, l_max 2, correlation 3, 2 layers), "visnet"
    (64 channels, 2 layers, the other defaults) or "nequip" (32x0e + 32x0o +
    16x1o + 16x1e, l_max 2, 2 layers): the configs of ``train_vs_peers``.

    The default MLIP optimizer and MSE loss; one epoch of batches grouped for
    ``num_devices`` devices and placed on the mesh.
    """
    import jax

    from mlip_eqx.data import ExtxyzReader, GraphDatasetBuilder
    from mlip_eqx.data.demo import get_demo_dataset
    from mlip_eqx.models import ForceField, Mace, Nequip, Visnet
    from mlip_eqx.models.loss import MSELoss
    from mlip_eqx.training.mesh import batch_sharding, make_mesh
    from mlip_eqx.training.optimizer import get_default_mlip_optimizer
    from mlip_eqx.training.training_state import init_training_state
    from mlip_eqx.training.training_step import make_train_step

    demo = get_demo_dataset()
    reader = ExtxyzReader(ExtxyzReader.Config(train_dataset_paths=demo.train_path))
    builder = GraphDatasetBuilder(
        reader,
        GraphDatasetBuilder.Config(
            graph_cutoff_angstrom=5.0, batch_size=8, validation_fraction=0.0
        ),
    )
    builder.prepare_datasets()
    train_set = builder.get_splits()[0]
    networks = {
        "mace": lambda: Mace(
            Mace.Config(num_channels=32, l_max=2, correlation=3, num_layers=2),
            builder.dataset_info,
        ),
        "visnet": lambda: Visnet(
            Visnet.Config(num_channels=64, num_layers=2), builder.dataset_info
        ),
        "nequip": lambda: Nequip(
            Nequip.Config(
                num_layers=2, node_irreps="32x0e + 32x0o + 16x1o + 16x1e", l_max=2
            ),
            builder.dataset_info,
        ),
    }
    force_field = ForceField.from_mlip_network(networks[model]())
    optimizer = get_default_mlip_optimizer()
    mesh = make_mesh()
    state = init_training_state(force_field, optimizer, mesh=mesh)
    train_step = make_train_step(force_field, MSELoss(), optimizer, mesh=mesh)
    sharding = batch_sharding(mesh)
    batches = [
        jax.device_put(batch, sharding)
        for batch in train_set.iter_batches(0, num_devices=num_devices)
    ]
    return train_step, state, batches, force_field
