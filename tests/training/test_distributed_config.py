import dataclasses
import socket
import time

import jax
import pytest

from mlip_eqx.training import TrainingLoop
from mlip_eqx.training.device_batches import batches_per_device
from mlip_eqx.training.distributed import (
    DistributedConfig,
    DistributedSetupError,
    is_primary_process,
    sync_processes,
)
from mlip_eqx.training.mesh import make_mesh, training_mesh
from mlip_eqx.utils.config import ConfigError

VARIABLES = ("MLIP_EQX_COORDINATOR", "MLIP_EQX_NUM_PROCESSES", "MLIP_EQX_PROCESS_ID")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_no_settings_anywhere_is_a_single_process_run():
    assert DistributedConfig.from_environment() is None
    assert is_primary_process()
    sync_processes("no-op with one process")
    assert training_mesh(False).devices.size == 1


def test_flags_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("MLIP_EQX_COORDINATOR", "node7:2000")
    monkeypatch.setenv("MLIP_EQX_NUM_PROCESSES", "4")
    monkeypatch.setenv("MLIP_EQX_PROCESS_ID", "3")
    assert DistributedConfig.from_environment() == DistributedConfig("node7:2000", 4, 3)
    config = DistributedConfig.from_environment(process_id=1)
    assert (config.coordinator, config.num_processes, config.process_id) == (
        "node7:2000",
        4,
        1,
    )


def test_incomplete_or_bad_settings_name_what_is_wrong(monkeypatch):
    with pytest.raises(DistributedSetupError, match="missing: num_processes"):
        DistributedConfig.from_environment("host:1234", process_id=0)
    monkeypatch.setenv("MLIP_EQX_NUM_PROCESSES", "two")
    with pytest.raises(DistributedSetupError, match="MLIP_EQX_NUM_PROCESSES='two'"):
        DistributedConfig.from_environment("host:1234", process_id=0)
    with pytest.raises(DistributedSetupError, match="not host:port"):
        DistributedConfig("host", 2, 0)
    with pytest.raises(DistributedSetupError, match="not below num_processes 2"):
        DistributedConfig("host:1", 2, 2)
    with pytest.raises(ConfigError, match="num_processes"):
        DistributedConfig("host:1", 0, 0)


def test_batches_per_step_must_be_a_multiple_of_the_devices():
    mesh = make_mesh(jax.devices()[:1])
    assert batches_per_device(mesh, None) == 1
    assert batches_per_device(mesh, 3) == 3
    with pytest.raises(ConfigError, match="batches_per_step"):
        TrainingLoop.Config(num_epochs=1, batches_per_step=0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_coordinator_or_a_taken_port_is_named_not_awaited():
    """Process 1 whose coordinator never listens stops after the timeout with
    a message (no XLA abort); process 0 whose port is taken stops at once."""
    from mlip_eqx.training.distributed import initialize_distributed

    port = _free_port()
    config = DistributedConfig(
        coordinator=f"127.0.0.1:{port}",
        num_processes=2,
        process_id=1,
        initialization_timeout_seconds=1,
    )
    start = time.monotonic()
    with pytest.raises(DistributedSetupError, match="did not accept a connection"):
        initialize_distributed(config)
    assert time.monotonic() - start < 10
    with socket.socket() as holder:
        holder.bind(("", port))
        holder.listen()
        first = dataclasses.replace(config, process_id=0)
        with pytest.raises(DistributedSetupError, match="two processes with"):
            initialize_distributed(first)


def test_a_save_broken_by_a_dead_process_is_not_a_disk_problem():
    """A checkpoint save whose collective broke because another process died
    is reported as the loss of a process (start again with --resume)."""
    from mlip_eqx.training.checkpointer import CheckpointSaveError
    from mlip_eqx.training.distributed import lost_another_process

    def save_error(cause: Exception) -> CheckpointSaveError:
        try:
            try:
                raise cause
            except Exception as error:
                raise CheckpointSaveError("Saving ... failed") from error
        except CheckpointSaveError as error:
            return error

    collective = ValueError(
        "UNKNOWN: Gloo AllGather failed: [external/gloo/gloo/transport/tcp/"
        "pair.cc:538] Read error [127.0.0.1]:40211: Connection reset by peer"
    )
    assert lost_another_process(save_error(collective))
    assert not lost_another_process(save_error(OSError(28, "No space left")))
