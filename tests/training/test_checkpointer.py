"""The checkpoint policy: what is saved, kept and restored, and when the directory
is opened."""

import functools
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest

from mlip_eqx.checkpoint import format as checkpoint_format
from mlip_eqx.checkpoint.format import (
    CheckpointCorruptedError,
    CheckpointRestorationError,
)
from mlip_eqx.data.dataset_info import DatasetInfo
from mlip_eqx.models import ForceField
from mlip_eqx.models.params_loading import load_parameters_from_checkpoint
from mlip_eqx.testing.physics import assert_trees_close
from mlip_eqx.training.checkpointer import Checkpointer, ExistingCheckpointsError
from mlip_eqx.training.ema import ema_update
from mlip_eqx.training.training_io_handler_config import TrainingIOHandlerConfig
from mlip_eqx.training.training_state import TrainingState, init_training_state
from tests.helpers.models import DATASET_INFO
from tests.helpers.pair_network import PairNetwork

REPOSITORY = Path(__file__).resolve().parents[2]


def pair_force_field(hidden: int = 16, dataset_info: DatasetInfo = DATASET_INFO):
    network = PairNetwork(
        PairNetwork.Config(hidden=hidden), dataset_info, key=jax.random.key(3)
    )
    return ForceField(network)


@pytest.fixture(scope="module")
def force_field():
    return pair_force_field()


def make_template(force_field: ForceField) -> TrainingState:
    """A training state with an optimizer state, EMA and user extras."""
    return init_training_state(
        force_field,
        optax.adam(1e-3),
        ema_decay=0.9,
        extras={"user_counter": jnp.zeros((), jnp.int32)},
    )


@functools.cache
def shared_template() -> TrainingState:
    """The template of the checkpoint tests, made once for all test files."""
    return make_template(pair_force_field())


@pytest.fixture(scope="module")
def template():
    return shared_template()


def state_of_epoch(template: TrainingState, epoch: int) -> TrainingState:
    """A state whose every array differs from the template's and from other
    epochs' (params, optimizer moments, EMA, counters, key, extras)."""

    def shifted(leaf):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf + 0.25 * epoch
        return leaf + epoch

    state = jax.tree.map(shifted, template)
    ema_state = ema_update(state.ema_state, state.params)
    ema_state = ema_update(ema_state, state.params)
    return eqx.tree_at(lambda s: s.ema_state, state, ema_state)


def checkpointer_for(directory, **settings) -> Checkpointer:
    return Checkpointer(
        TrainingIOHandlerConfig(local_model_output_dir=directory, **settings)
    )


def committed_epochs(output_dir: Path) -> list[int]:
    model = output_dir / "model"
    return sorted(int(p.name) for p in model.iterdir() if p.name.isdigit())


def assert_same_arrays(actual, expected):
    assert_trees_close(actual, expected, rtol=0, atol=0)


def test_nothing_is_touched_before_the_directory_is_opened(template, tmp_path):
    output = tmp_path / "run"
    checkpointer = checkpointer_for(output)
    assert checkpointer.output_dir == output.resolve()
    assert checkpointer.checkpoint_dir == output.resolve() / "model"
    assert not output.exists()
    checkpointer.open()
    assert sorted(p.name for p in output.iterdir()) == [".lock", "model"]
    with pytest.raises(ValueError, match="local_model_output_dir"):
        Checkpointer(TrainingIOHandlerConfig())


def test_directory_layout(template, tmp_path):
    output = tmp_path / "run"
    checkpointer = checkpointer_for(output)
    checkpointer.save_dataset_info(DATASET_INFO)
    checkpointer.save(state_of_epoch(template, 1), 1)
    checkpointer.save(state_of_epoch(template, 2), 2)
    checkpointer.wait_until_finished()
    assert checkpointer.checkpoint_dir == output.resolve() / "model"
    assert DatasetInfo.load_json(output / "dataset_info.json") == DATASET_INFO
    assert sorted(p.name for p in output.iterdir()) == [
        ".lock",
        "dataset_info.json",
        "model",
    ]
    assert committed_epochs(output) == [1, 2] == checkpointer.saved_epochs()
    assert checkpointer.latest_epoch() == 2
    items = {p.name for p in (output / "model" / "2").iterdir() if p.is_dir()}
    assert items == {"params", "training_state", "params_ema", "layout", "metrics"}
    without_ema = checkpointer_for(tmp_path / "no_ema", save_debiased_ema=False)
    without_ema.save(template, 1)
    without_ema.wait_until_finished()
    items = {p.name for p in (without_ema.checkpoint_dir / "1").iterdir()}
    assert "params_ema" not in items and "params" in items


@pytest.fixture(scope="module")
def three_epochs(template, tmp_path_factory):
    """An output directory with checkpoints of epochs 1, 2, 3."""
    output = tmp_path_factory.mktemp("three_epochs")
    checkpointer = checkpointer_for(output)
    for epoch in (1, 2, 3):
        checkpointer.save(state_of_epoch(template, epoch), epoch)
    checkpointer.wait_until_finished()
    return output


def test_restore_latest_epoch_parameters_only(template, three_epochs):
    checkpointer = checkpointer_for(three_epochs, restore_checkpoint_if_exists=True)
    state, epoch = checkpointer.restore_training_state(template)
    assert epoch == 3
    assert_same_arrays(state.params, state_of_epoch(template, 3).params)
    for name in (
        "optimizer_state",
        "ema_state",
        "num_steps",
        "key",
        "best_model",
        "extras",
    ):
        assert_same_arrays(getattr(state, name), getattr(template, name))
    for restored, expected in zip(jax.tree.leaves(state), jax.tree.leaves(template)):
        assert restored.sharding == expected.sharding


def test_restore_chosen_epoch_with_optimizer_state(template, three_epochs):
    checkpointer = checkpointer_for(
        three_epochs,
        restore_checkpoint_if_exists=True,
        epoch_to_restore=2,
        restore_optimizer_state=True,
    )
    state, epoch = checkpointer.restore_training_state(template)
    assert epoch == 2
    expected = state_of_epoch(template, 2)
    assert_same_arrays(state, expected)
    assert not jnp.array_equal(state.optimizer_state[0].mu.network.first_layer, 0.0)
    for restored, reference in zip(jax.tree.leaves(state), jax.tree.leaves(template)):
        assert restored.sharding == reference.sharding


def test_a_format_2_checkpoint_of_the_plain_ema_average_is_converted(
    template, tmp_path, monkeypatch
):
    # Format 2 stored the plain average; format 3 the bias-corrected one.
    state = state_of_epoch(template, 1)
    ema = state.ema_state
    plain = jax.tree.map(
        lambda average: average * (1.0 - ema.decay ** int(ema.step)), ema.params_ema
    )
    old_state = eqx.tree_at(lambda s: s.ema_state.params_ema, state, plain)
    monkeypatch.setattr(checkpoint_format, "CHECKPOINT_FORMAT_VERSION", 2)
    checkpointer = checkpointer_for(tmp_path)
    checkpointer.save(old_state, 1)
    checkpointer.wait_until_finished()
    monkeypatch.undo()
    restored, _ = checkpointer_for(
        tmp_path, restore_checkpoint_if_exists=True, restore_optimizer_state=True
    ).restore_training_state(template)
    assert_trees_close(
        restored.ema_state.params_ema, ema.params_ema, rtol=1e-6, atol=1e-7
    )


def test_restore_of_a_missing_epoch_names_the_saved_ones(template, three_epochs):
    checkpointer = checkpointer_for(
        three_epochs, restore_checkpoint_if_exists=True, epoch_to_restore=7
    )
    with pytest.raises(CheckpointRestorationError, match=r"epoch 7.*\[1, 2, 3\]"):
        checkpointer.restore_training_state(template)
    assert issubclass(CheckpointRestorationError, ValueError)


def test_restore_is_skipped_when_off_or_when_there_is_nothing(template, tmp_path):
    assert checkpointer_for(tmp_path / "a").restore_training_state(template) is None
    checkpointer = checkpointer_for(tmp_path / "b", restore_checkpoint_if_exists=True)
    assert checkpointer.restore_training_state(template) is None
    checkpointer = checkpointer_for(
        tmp_path / "c", restore_checkpoint_if_exists=True, epoch_to_restore=1
    )
    with pytest.raises(CheckpointRestorationError, match="none"):
        checkpointer.restore_training_state(template)


def test_checkpoint_of_another_model_is_rejected_before_training(
    template, three_epochs
):
    wider = init_training_state(pair_force_field(hidden=8), optax.adam(1e-3))
    checkpointer = checkpointer_for(three_epochs, restore_checkpoint_if_exists=True)
    with pytest.raises(
        CheckpointRestorationError,
        match=r"species_embedding has shape \(3, 16\) in the checkpoint but \(3, 8\)",
    ):
        checkpointer.restore_training_state(wider)
    two_elements = DatasetInfo(
        atomic_energies_map={29: -3.5, 47: -2.75}, cutoff_distance_angstrom=4.0
    )
    other_elements = init_training_state(
        pair_force_field(dataset_info=two_elements), optax.adam(1e-3)
    )
    with pytest.raises(CheckpointRestorationError, match=r"\(3, 16\).*\(2, 16\)"):
        checkpointer.restore_training_state(other_elements)


def test_other_optimizer_restores_parameters_but_not_its_state(
    force_field, template, three_epochs
):
    sgd_template = init_training_state(force_field, optax.sgd(0.1, momentum=0.9))
    params_only = checkpointer_for(three_epochs, restore_checkpoint_if_exists=True)
    state, _ = params_only.restore_training_state(sgd_template)
    assert_same_arrays(state.params, state_of_epoch(template, 3).params)
    assert_same_arrays(state.optimizer_state, sgd_template.optimizer_state)
    everything = checkpointer_for(
        three_epochs, restore_checkpoint_if_exists=True, restore_optimizer_state=True
    )
    with pytest.raises(CheckpointRestorationError, match="not in the checkpoint"):
        everything.restore_training_state(sgd_template)


def test_clear_previous_checkpoints_keeps_other_files(template, tmp_path):
    checkpointer = checkpointer_for(tmp_path)
    checkpointer.save_dataset_info(DATASET_INFO)
    checkpointer.save(template, 1)
    checkpointer.wait_until_finished()
    (tmp_path / "notes.txt").write_text("model config")
    # The checkpoints of an earlier run are refused when the directory is opened.
    refusing = checkpointer_for(tmp_path)
    with pytest.raises(ExistingCheckpointsError, match="epochs \\[1\\].*--resume"):
        refusing.open()
    with pytest.raises(ExistingCheckpointsError):
        refusing.save(template, 2)
    assert committed_epochs(tmp_path) == [1]
    cleared = checkpointer_for(tmp_path, clear_previous_checkpoints=True)
    assert cleared.saved_epochs() == []
    assert committed_epochs(tmp_path) == []
    assert (tmp_path / "notes.txt").read_text() == "model config"
    assert (tmp_path / "dataset_info.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".lock",
        "dataset_info.json",
        "model",
        "notes.txt",
    ]
    cleared.save(template, 1)
    cleared.wait_until_finished()
    assert committed_epochs(tmp_path) == [1]


def test_max_checkpoints_to_keep(template, tmp_path):
    checkpointer = checkpointer_for(tmp_path, max_checkpoints_to_keep=2)
    for epoch in (1, 2, 4, 5):
        checkpointer.save(state_of_epoch(template, epoch), epoch)
    checkpointer.wait_until_finished()
    assert checkpointer.saved_epochs() == [4, 5] == committed_epochs(tmp_path)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["4", "5"]


def test_saving_after_restoring_an_older_epoch_replaces_later_ones(template, tmp_path):
    first_run = checkpointer_for(tmp_path)
    for epoch in (1, 2, 3):
        first_run.save(state_of_epoch(template, epoch), epoch)
    first_run.wait_until_finished()
    second_run = checkpointer_for(
        tmp_path, restore_checkpoint_if_exists=True, epoch_to_restore=1
    )
    _, epoch = second_run.restore_training_state(template)
    assert epoch == 1
    second_run.save(state_of_epoch(template, 20), 2)
    second_run.wait_until_finished()
    assert committed_epochs(tmp_path) == [1, 2]
    assert [p.name for p in (tmp_path / "model").iterdir() if "." in p.name] == []
    state, epoch = checkpointer_for(
        tmp_path, restore_checkpoint_if_exists=True
    ).restore_training_state(template)
    assert epoch == 2
    assert_same_arrays(state.params, state_of_epoch(template, 20).params)


def test_half_written_checkpoint_is_never_restored(template, tmp_path):
    checkpointer = checkpointer_for(tmp_path)
    checkpointer.save(state_of_epoch(template, 1), 1)
    checkpointer.save(state_of_epoch(template, 2), 2)
    checkpointer.wait_until_finished()
    # What a process killed during Orbax's write of epoch 3 leaves behind.
    partial = tmp_path / "model" / "3.orbax-checkpoint-tmp"
    (partial / "params").mkdir(parents=True)
    (partial / "params" / "manifest.ocdbt").write_bytes(b"\x00" * 10)
    # What a process killed while deleting a checkpoint leaves behind.
    (tmp_path / "model" / ".deleting" / "0" / "params").mkdir(parents=True)
    resumed = checkpointer_for(tmp_path, restore_checkpoint_if_exists=True)
    assert resumed.saved_epochs() == [1, 2]
    state, epoch = resumed.restore_training_state(template)
    assert epoch == 2
    assert_same_arrays(state.params, state_of_epoch(template, 2).params)
    resumed.save(state_of_epoch(template, 3), 3)
    resumed.wait_until_finished()
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["1", "2", "3"]


KILLED_DURING_SAVE = """
import os, signal, threading, time
import jax, jax.numpy as jnp, optax
import equinox as eqx
from mlip_eqx.models import ForceField
from mlip_eqx.training.checkpointer import Checkpointer
from mlip_eqx.training.training_io_handler_config import TrainingIOHandlerConfig
from mlip_eqx.training.training_state import init_training_state
from tests.helpers.models import DATASET_INFO
from tests.helpers.pair_network import PairNetwork

network = PairNetwork(PairNetwork.Config(), DATASET_INFO, key=jax.random.key(3))
state = init_training_state(ForceField(network), optax.adam(1e-3))
# 100 MB, so that the write is still running when the process dies.
state = eqx.tree_at(lambda s: s.extras, state, {"ballast": jnp.zeros(25_000_000)})
checkpointer = Checkpointer(TrainingIOHandlerConfig(local_model_output_dir=__OUT__))
checkpointer.save(jax.tree.map(lambda x: x + 1, state), 1)
checkpointer.wait_until_finished()

def kill_once_the_second_save_writes():
    temporary = os.path.join(__OUT__, "model", "2.orbax-checkpoint-tmp")
    while not os.path.exists(temporary):
        time.sleep(0.001)
    os.kill(os.getpid(), signal.SIGKILL)

threading.Thread(target=kill_once_the_second_save_writes, daemon=True).start()
checkpointer.save(jax.tree.map(lambda x: x + 2, state), 2)
time.sleep(60)
"""


def test_process_killed_during_a_save_leaves_the_last_checkpoint(force_field, tmp_path):
    script = KILLED_DURING_SAVE.replace("__OUT__", repr(str(tmp_path)))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=REPOSITORY,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    assert committed_epochs(tmp_path) == [1], "the save of epoch 2 had completed"
    template = init_training_state(force_field, optax.adam(1e-3))
    template = eqx.tree_at(
        lambda s: s.extras, template, {"ballast": jnp.zeros(25_000_000)}
    )
    checkpointer = checkpointer_for(
        tmp_path, restore_checkpoint_if_exists=True, restore_optimizer_state=True
    )
    state, epoch = checkpointer.restore_training_state(template)
    assert epoch == 1
    expected = jax.tree.map(lambda x: x + 1, template)
    assert_same_arrays(state.params, expected.params)
    assert float(state.extras["ballast"][-1]) == 1.0
    checkpointer.save(state, 2)
    checkpointer.wait_until_finished()
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["1", "2"]


MULTI_DEVICE_RESTORE = """
import jax, optax, numpy as np
from mlip_eqx.models import ForceField
from mlip_eqx.training.mesh import make_mesh
from mlip_eqx.training.checkpointer import Checkpointer
from mlip_eqx.training.training_io_handler_config import TrainingIOHandlerConfig
from mlip_eqx.training.training_state import init_training_state
from tests.helpers.models import DATASET_INFO
from tests.helpers.pair_network import PairNetwork

assert len(jax.devices()) == 2
network = PairNetwork(PairNetwork.Config(), DATASET_INFO, key=jax.random.key(3))
mesh = make_mesh()
template = init_training_state(ForceField(network), optax.adam(1e-3), mesh=mesh)
saved = jax.tree.map(lambda x: x + 1, template)
config = TrainingIOHandlerConfig(local_model_output_dir=__OUT__)
checkpointer = Checkpointer(config)
checkpointer.save(saved, 1)
checkpointer.wait_until_finished()
config = config.replace(restore_checkpoint_if_exists=True, restore_optimizer_state=True)
state, epoch = Checkpointer(config).restore_training_state(template)
for restored, reference, expected in zip(
    jax.tree.leaves(state), jax.tree.leaves(template), jax.tree.leaves(saved)
):
    assert restored.sharding == reference.sharding, restored.sharding
    assert len(restored.sharding.device_set) == 2
    np.testing.assert_array_equal(np.asarray(restored), np.asarray(expected))
print("restored on", len(state.params.network.first_layer.sharding.device_set))
"""


def test_restored_arrays_are_replicated_like_the_template_on_two_devices(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            MULTI_DEVICE_RESTORE.replace("__OUT__", repr(str(tmp_path))),
        ],
        cwd=REPOSITORY,
        env={
            **os.environ,
            "PYTHONPATH": str(REPOSITORY),
            "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")
            + " --xla_force_host_platform_device_count=2",
        },
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert b"restored on 2" in result.stdout


def data_file(item: Path) -> Path:
    """The largest data file that a checkpoint item is read from (the files under
    ``ocdbt.process_0`` are merged into ``d/`` and not read again)."""
    return max((item / "d").iterdir(), key=lambda p: p.stat().st_size)


def flip_a_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flipped bit", "missing file", "truncated file"])
def test_damaged_checkpoint_is_detected_and_resume_falls_back(
    template, tmp_path, damage, caplog
):
    checkpointer = checkpointer_for(tmp_path)
    for epoch in (1, 2):
        checkpointer.save(state_of_epoch(template, epoch), epoch)
    checkpointer.wait_until_finished()
    victim = data_file(tmp_path / "model" / "2" / "params")
    if damage == "flipped bit":
        flip_a_bit(victim)
    elif damage == "missing file":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])

    with pytest.raises(CheckpointCorruptedError, match=r"model/2/params"):
        load_parameters_from_checkpoint(tmp_path, template.params, 2)
    with pytest.raises(CheckpointCorruptedError, match=r"model/2"):
        checkpointer_for(
            tmp_path, restore_checkpoint_if_exists=True, epoch_to_restore=2
        ).restore_training_state(template)
    # Resuming from the latest checkpoint falls back to the newest intact one.
    resuming = checkpointer_for(
        tmp_path, restore_checkpoint_if_exists=True, restore_optimizer_state=True
    )
    with caplog.at_level("WARNING", logger="mlip_eqx"):
        state, epoch = resuming.restore_training_state(template)
    assert epoch == 1
    assert_same_arrays(state, state_of_epoch(template, 1))
    assert any("epoch 1 instead" in r.getMessage() for r in caplog.records)


def test_only_damaged_checkpoints_is_an_error(template, tmp_path):
    checkpointer = checkpointer_for(tmp_path)
    checkpointer.save(state_of_epoch(template, 1), 1)
    checkpointer.wait_until_finished()
    flip_a_bit(data_file(tmp_path / "model" / "1" / "params"))
    resuming = checkpointer_for(tmp_path, restore_checkpoint_if_exists=True)
    with pytest.raises(CheckpointCorruptedError, match="model/1"):
        resuming.restore_training_state(template)


def test_best_checkpoint_is_kept_beyond_max_checkpoints_to_keep(template, tmp_path):
    checkpointer = checkpointer_for(tmp_path, max_checkpoints_to_keep=2)
    losses = {1: 5.0, 2: 1.0, 3: 4.0, 4: 3.0, 5: float("nan")}
    for epoch, loss in losses.items():
        checkpointer.save(state_of_epoch(template, epoch), epoch, loss)
    checkpointer.wait_until_finished()
    assert checkpointer.saved_epochs() == [2, 4, 5] == committed_epochs(tmp_path)
    # The record of the kept best checkpoint survives a new checkpointer.
    reopened = checkpointer_for(
        tmp_path, max_checkpoints_to_keep=2, restore_checkpoint_if_exists=True
    )
    reopened.save(state_of_epoch(template, 6), 6, 2.0)
    reopened.wait_until_finished()
    assert reopened.saved_epochs() == [2, 5, 6]


LOCK_HOLDER = """
import sys, time
from mlip_eqx.training.checkpointer import Checkpointer
from mlip_eqx.training.training_io_handler_config import TrainingIOHandlerConfig
checkpointer = Checkpointer(TrainingIOHandlerConfig(local_model_output_dir=sys.argv[1]))
checkpointer.open()
print("LOCKED", flush=True)
time.sleep(60)
"""


def test_a_second_process_cannot_use_the_output_directory(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(tmp_path)],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        second = subprocess.run(
            [sys.executable, "-c", LOCK_HOLDER, str(tmp_path)],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert "DirectoryLockedError" in second.stderr
        assert f"process {holder.pid}" in second.stderr
    finally:
        holder.kill()
        holder.wait()
    # Once the first process is gone (killed, even), the directory is free.
    checkpointer = checkpointer_for(tmp_path)
    checkpointer.open()
    assert checkpointer.saved_epochs() == []
