import equinox as eqx
import jax
import optax
import pytest

from mlip_eqx.models import ForceField
from mlip_eqx.models.params_loading import load_parameters_from_checkpoint
from mlip_eqx.testing.physics import assert_trees_close
from mlip_eqx.training.ema import debiased_ema_params, ema_update
from mlip_eqx.training.training_io_handler import (
    CheckpointRestorationError,
    TrainingIOHandler,
)
from mlip_eqx.training.training_state import init_training_state
from tests.helpers.models import DATASET_INFO
from tests.helpers.pair_network import PairNetwork

EMA_DECAY = 0.9


def pair_force_field(hidden: int = 16) -> ForceField:
    network = PairNetwork(
        PairNetwork.Config(hidden=hidden), DATASET_INFO, key=jax.random.key(2)
    )
    return ForceField(network)


@pytest.fixture(scope="module")
def force_field():
    return pair_force_field()


def trained_state(force_field, epoch):
    """A state whose parameters and EMA differ per epoch and from each other."""
    state = init_training_state(force_field, optax.adam(1e-3), ema_decay=EMA_DECAY)
    ema_state = state.ema_state
    for step in range(3):
        shift = 0.1 * (step + epoch)
        params = jax.tree.map(lambda p, shift=shift: p + shift, state.params)
        ema_state = ema_update(ema_state, params)
    return eqx.tree_at(lambda s: (s.params, s.ema_state), state, (params, ema_state))


@pytest.fixture(scope="module")
def output_dir(force_field, tmp_path_factory):
    directory = tmp_path_factory.mktemp("run")
    handler = TrainingIOHandler(
        TrainingIOHandler.Config(local_model_output_dir=directory)
    )
    for epoch in (1, 2):
        handler.save_checkpoint(trained_state(force_field, epoch), epoch)
    handler.wait_until_finished()
    return directory


def assert_same_arrays(actual, expected):
    assert_trees_close(actual, expected, rtol=0, atol=0)


@pytest.mark.parametrize("subdirectory", ["", "model"])
def test_loads_the_parameters_of_an_epoch(force_field, output_dir, subdirectory):
    for epoch in (1, 2):
        params = load_parameters_from_checkpoint(
            output_dir / subdirectory, force_field.params, epoch
        )
        assert_same_arrays(params, trained_state(force_field, epoch).params)


def test_loads_the_debiased_ema_parameters(force_field, output_dir):
    params = load_parameters_from_checkpoint(
        str(output_dir), force_field.params, 2, load_ema_params=True
    )
    state = trained_state(force_field, 2)
    expected = debiased_ema_params(state.ema_state)
    assert_trees_close(params, expected, rtol=1e-6, atol=0)
    difference = jax.tree.leaves(
        jax.tree.map(lambda a, b: abs(a - b), params, state.params)
    )
    assert max(float(d.max()) for d in difference) > 0.05


def test_missing_epoch_lists_the_saved_ones(force_field, output_dir):
    with pytest.raises(CheckpointRestorationError, match=r"epoch 5.*\[1, 2\]"):
        load_parameters_from_checkpoint(output_dir, force_field.params, 5)


def test_ema_parameters_that_were_not_saved(force_field, tmp_path):
    handler = TrainingIOHandler(
        TrainingIOHandler.Config(
            local_model_output_dir=tmp_path, save_debiased_ema=False
        )
    )
    handler.save_checkpoint(trained_state(force_field, 1), 1)
    handler.wait_until_finished()
    with pytest.raises(CheckpointRestorationError, match="save_debiased_ema=False"):
        load_parameters_from_checkpoint(
            tmp_path, force_field.params, 1, load_ema_params=True
        )
    params = load_parameters_from_checkpoint(tmp_path, force_field.params, 1)
    assert_same_arrays(params, trained_state(force_field, 1).params)


def test_parameters_of_another_model(output_dir):
    other = pair_force_field(hidden=8)
    with pytest.raises(
        CheckpointRestorationError,
        match=r"species_embedding has shape \(3, 16\).*\(3, 8\)",
    ):
        load_parameters_from_checkpoint(output_dir, other.params, 1)


def test_missing_directory(force_field, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_parameters_from_checkpoint(tmp_path / "nowhere", force_field.params, 1)
