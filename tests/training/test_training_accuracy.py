"""Training MACE for 150 steps on the demo data must clearly help."""

from mlip_eqx.data import ExtxyzReader, GraphDatasetBuilder
from mlip_eqx.data.demo import get_demo_dataset
from mlip_eqx.models import ForceField, Mace
from mlip_eqx.models.loss import MSELoss
from mlip_eqx.models.loss.reductions import reduce_metrics
from mlip_eqx.training.ema import debiased_ema_params
from mlip_eqx.training.optimizer import get_default_mlip_optimizer
from mlip_eqx.training.optimizer_config import OptimizerConfig
from mlip_eqx.training.training_state import init_training_state
from mlip_eqx.training.training_step import make_eval_step, make_train_step

# Measured (seed 3): validation force MAE 1.00 -> 0.081 eV/Å (0.124 with EMA).
STEPS = 150


def validation_force_mae(eval_step, params, validation_set):
    steps = [
        eval_step(params, batch, 0)
        for batch in validation_set.iter_batches(0, num_devices=1)
    ]
    return reduce_metrics(steps)["mae_f"]


def test_150_steps_of_mace_lower_the_validation_force_error(tmp_path):
    demo = get_demo_dataset(num_structures=60, seed=3, cache_dir=tmp_path)
    reader = ExtxyzReader(
        ExtxyzReader.Config(
            train_dataset_paths=demo.train_path,
            valid_dataset_paths=demo.validation_path,
        )
    )
    builder = GraphDatasetBuilder(
        reader, GraphDatasetBuilder.Config(graph_cutoff_angstrom=4.0, batch_size=4)
    )
    builder.prepare_datasets()
    train_set, validation_set, _ = builder.get_splits()
    mace = Mace(
        Mace.Config(num_channels=8, l_max=1, correlation=2, num_layers=2),
        builder.dataset_info,
    )
    force_field = ForceField.from_mlip_network(mace)
    optimizer = get_default_mlip_optimizer(OptimizerConfig(warmup_steps=20))
    loss = MSELoss()
    state = init_training_state(force_field, optimizer)
    train_step = make_train_step(force_field, loss, optimizer)
    eval_step = make_eval_step(force_field, loss)

    before = validation_force_mae(eval_step, state.params, validation_set)
    steps, epoch = 0, 0
    while steps < STEPS:
        for batch in train_set.iter_batches(epoch, num_devices=1):
            state, metrics = train_step(state, batch, epoch)
            steps += 1
        epoch += 1
    assert metrics["skipped_updates"].result() == 0.0
    after = validation_force_mae(eval_step, state.params, validation_set)
    after_ema = validation_force_mae(
        eval_step, debiased_ema_params(state.ema_state), validation_set
    )
    # Untrained MACE predicts nearly zero forces (MAE ~ mean |F|); training must
    # cut the error at least five-fold, with raw and with EMA parameters.
    print("force MAE before, after, after EMA:", before, after, after_ema)
    assert after < 0.2 * before, (before, after)
    assert after_ema < 0.2 * before, (before, after_ema)
