"""Freezing: frozen arrays stay bit-identical through training steps, trained
ones move, and the selectors pick the paths they say."""

import numpy as np
import pytest

from mlip_eqx.graph import stack_graphs
from mlip_eqx.models.loss import MSELoss
from mlip_eqx.models.loss.reductions import reduce_metrics
from mlip_eqx.training.freezing import (
    freeze_parameters,
    last_layers,
    readout_heads,
    readouts_only,
    trainable_labels,
)
from mlip_eqx.training.optimizer import get_default_mlip_optimizer
from mlip_eqx.training.optimizer_config import OptimizerConfig
from mlip_eqx.training.training_state import init_training_state
from mlip_eqx.training.training_step import make_train_step
from mlip_eqx.utils.trees import flatten_with_key_paths
from tests.helpers.models import force_field
from tests.training.test_training_step import make_batches


def leaves_by_path(params):
    return {path: np.asarray(leaf) for path, leaf in flatten_with_key_paths(params)}


def test_selectors_pick_readouts_and_the_last_layers():
    params = force_field("mace-3-layers-symmetric-basis").params
    paths = list(leaves_by_path(params))
    readouts = [p for p in paths if readouts_only(p)]
    assert readouts and all(".readouts[" in p for p in readouts)
    last = last_layers(params, 1)
    trained = {p for p in paths if last(p)}
    assert {p for p in paths if ".layers[2]." in p} <= trained
    assert set(readouts) <= trained
    assert not any(".layers[1].interaction" in p for p in trained)
    assert ".network.embedding" not in trained
    assert {p for p in paths if last_layers(params, 3)(p)} == {
        p for p in paths if ".layers[" in p
    }
    with pytest.raises(ValueError, match="num_layers must be >= 0"):
        last_layers(params, -1)
    second_head = {p for p in paths if readout_heads(1)(p)}
    assert second_head and all(".readouts[1]." in p for p in second_head)
    assert second_head | {p for p in paths if readout_heads(0)(p)} == set(readouts)


def test_fine_tuning_config_checks_the_new_head_settings():
    from mlip_eqx.training.fine_tuning import FineTuningConfig, trainable_predicate
    from mlip_eqx.utils.config import ConfigError

    config = FineTuningConfig(
        init_from="model.zip", new_head="pbe", train_new_head_only=True
    )
    params = force_field("mace-3-layers-symmetric-basis").params
    trainable = trainable_predicate(config, params, new_head_index=1)
    paths = list(leaves_by_path(params))
    assert {p for p in paths if trainable(p)} == {
        p for p in paths if ".readouts[1]." in p
    }
    with pytest.raises(ConfigError, match="need init_from"):
        FineTuningConfig(new_head="pbe")
    with pytest.raises(ConfigError, match="train_new_head_only needs new_head"):
        FineTuningConfig(init_from="model.zip", train_new_head_only=True)
    with pytest.raises(ConfigError, match="exclude each other"):
        FineTuningConfig(
            init_from="m.zip",
            new_head="pbe",
            train_new_head_only=True,
            train_last_layers=1,
        )


@pytest.mark.parametrize("selector", ["readouts", "last layer"])
def test_frozen_arrays_stay_bit_identical_while_the_others_train(selector):
    ff = force_field("mace")
    trainable = readouts_only if selector == "readouts" else last_layers(ff.params, 1)
    optimizer = freeze_parameters(
        get_default_mlip_optimizer(OptimizerConfig(warmup_steps=0, weight_decay=0.1)),
        trainable,
        ff.params,
    )
    state = init_training_state(ff, optimizer, ema_decay=0.9)
    train_step = make_train_step(ff, MSELoss(), optimizer)
    before = leaves_by_path(ff.params)
    for seed in range(3):
        state, metrics = train_step(state, stack_graphs(make_batches(seed, 1)), 0)
        assert np.isfinite(float(reduce_metrics([metrics])["loss"]))
    after = leaves_by_path(state.params)
    labels = dict(flatten_with_key_paths(trainable_labels(ff.params, trainable)))
    frozen = [p for p, label in labels.items() if label == "frozen"]
    trained = [p for p, label in labels.items() if label == "trained"]
    assert frozen and trained
    for path in frozen:
        assert after[path].tobytes() == before[path].tobytes(), path
    assert all(not np.array_equal(after[p], before[p]) for p in trained)


def test_nothing_to_train_is_an_error():
    ff = force_field("mace")
    with pytest.raises(ValueError, match="no parameter is left to train"):
        freeze_parameters(get_default_mlip_optimizer(), lambda path: False, ff.params)


def test_freezing_settings_that_select_nothing_or_too_much_are_named():
    from mlip_eqx.training.fine_tuning import FineTuningConfig, trainable_predicate
    from mlip_eqx.utils.config import ConfigError

    params = force_field("mace-3-layers-symmetric-basis").params
    config = FineTuningConfig(init_from="model.zip", frozen=("embeding",))
    with pytest.raises(ConfigError, match="'embeding' matches no parameter"):
        trainable_predicate(config, params)
    config = FineTuningConfig(init_from="model.zip", train_last_layers=4)
    with pytest.raises(ConfigError, match="4, but the model has 3 layers"):
        trainable_predicate(config, params)
    config = FineTuningConfig(init_from="model.zip", train_last_layers=3)
    assert trainable_predicate(config, params)(".network.layers[0].readouts[0]")
