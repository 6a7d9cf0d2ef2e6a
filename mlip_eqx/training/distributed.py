"""Training over several processes with ``jax.distributed``: joining, roles, sync.

Every process runs the same program: it joins the run with
:func:`initialize_distributed` before any JAX computation, then builds the same
data sets, model and :class:`~mlip_eqx.training.TrainingLoop` with
``should_parallelize=True``. The loop's mesh spans the devices of all processes;
each process builds only its own devices' batches, the steps' ``psum`` adds the
processes' sums, and only process 0 (:func:`is_primary_process`) writes files and
runs the loggers, while Orbax writes checkpoints from all of them.
"""

import dataclasses
import logging
import os
import socket
import time

import jax
from jax.experimental import multihost_utils

from mlip_eqx.training.join_handshake import (
    JoinError,
    ProcessAnnouncement,
    announce_to_coordinator,
    gather_processes,
    split_address,
)
from mlip_eqx.utils.config import Config, NonNegativeInt, PositiveInt

logger = logging.getLogger("mlip_eqx")

# Environment variables read by DistributedConfig.from_environment.
COORDINATOR_VARIABLE = "MLIP_EQX_COORDINATOR"
NUM_PROCESSES_VARIABLE = "MLIP_EQX_NUM_PROCESSES"
PROCESS_ID_VARIABLE = "MLIP_EQX_PROCESS_ID"


class DistributedSetupError(ValueError):
    """The settings of a multi-process run are incomplete or inconsistent."""


@dataclasses.dataclass(frozen=True)
class DistributedConfig(Config):
    """How one process joins a multi-process run.

    Attributes:
        coordinator: ``host:port`` of process 0, which all processes reach (it
            listens on that port).
        num_processes: Number of processes of the run.
        process_id: This process's index, 0 to ``num_processes - 1``.
        heartbeat_timeout_seconds: A process silent this long counts as dead: the
            others then stop with an error instead of waiting for it.
        initialization_timeout_seconds: How long to wait for the coordinator
            to be reachable and for every process to join; then the run stops
            with an error naming what it waited for.
    """

    coordinator: str
    num_processes: PositiveInt
    process_id: NonNegativeInt
    heartbeat_timeout_seconds: PositiveInt = 60
    initialization_timeout_seconds: PositiveInt = 120

    def __check_init__(self) -> None:
        host, _, port = self.coordinator.rpartition(":")
        if not host or not port.isdigit():
            raise DistributedSetupError(
                f"coordinator {self.coordinator!r} is not host:port (e.g. "
                "node001:12345, the address of process 0)."
            )
        if self.process_id >= self.num_processes:
            raise DistributedSetupError(
                f"process_id {self.process_id} is not below num_processes "
                f"{self.num_processes} (process ids are 0 to num_processes - 1)."
            )

    @classmethod
    def from_environment(
        cls,
        coordinator: str | None = None,
        num_processes: int | None = None,
        process_id: int | None = None,
    ) -> "DistributedConfig | None":
        """The settings given, completed from ``MLIP_EQX_COORDINATOR``,
        ``MLIP_EQX_NUM_PROCESSES`` and ``MLIP_EQX_PROCESS_ID``; None if none of
        the three is set anywhere (a single-process run).

        Raises:
            DistributedSetupError: If only some are set, or a number is not one.
        """
        values = {
            "coordinator": (coordinator, COORDINATOR_VARIABLE),
            "num_processes": (num_processes, NUM_PROCESSES_VARIABLE),
            "process_id": (process_id, PROCESS_ID_VARIABLE),
        }
        found = {}
        for name, (given, variable) in values.items():
            value = given if given is not None else os.environ.get(variable)
            if value is None:
                continue
            if name != "coordinator":
                try:
                    value = int(value)
                except ValueError:
                    raise DistributedSetupError(
                        f"{variable}={value!r} is not an integer."
                    ) from None
            found[name] = value
        if not found:
            return None
        missing = [
            f"{name} (--{name.replace('_', '-')} or {variable})"
            for name, (_, variable) in values.items()
            if name not in found
        ]
        if missing:
            raise DistributedSetupError(
                "A multi-process run needs the coordinator address, the number of "
                f"processes and this process's id; missing: {', '.join(missing)}."
            )
        return cls(**found)


def initialize_distributed(config: DistributedConfig) -> None:
    """Joins the multi-process run (``jax.distributed.initialize``); call it before
    any JAX computation. CPU devices exchange data through Gloo (over TCP).

    Blocks until every process has joined or the initialization timeout passes.
    Before handing over to JAX (whose own failures abort the process), the
    processes check each other (:mod:`~mlip_eqx.training.join_handshake`):
    process 0 listens on the coordinator's port, and every other process tells
    it its id and number of processes, logging what it waits for.

    Raises:
        DistributedSetupError: The coordinator's port is taken (another process
            0, or another program); process 0 did not accept connections or not
            every process came within the timeout (named); two processes have one
            id, or processes were given different numbers of processes.
    """
    deadline = time.monotonic() + config.initialization_timeout_seconds
    try:
        if config.process_id == 0:
            gather_processes(
                _listen_on(config.coordinator), config.num_processes, deadline
            )
        else:
            announcement = ProcessAnnouncement(
                config.process_id, config.num_processes, socket.gethostname()
            )
            announce_to_coordinator(config.coordinator, announcement, deadline)
    except JoinError as error:
        raise DistributedSetupError(str(error)) from None
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        config.coordinator,
        num_processes=config.num_processes,
        process_id=config.process_id,
        initialization_timeout=max(1, int(deadline - time.monotonic())),
        heartbeat_timeout_seconds=config.heartbeat_timeout_seconds,
    )
    logger.info(
        "Process %d of %d joined the run (coordinator %s): %d of %d devices here.",
        jax.process_index(),
        jax.process_count(),
        config.coordinator,
        jax.local_device_count(),
        jax.device_count(),
    )


def _listen_on(coordinator: str) -> socket.socket:
    """A socket listening on the coordinator's port, for the processes'
    announcements (closed before JAX's service takes the port)."""
    _, port = split_address(coordinator)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", port))
        listener.listen()
    except OSError as error:
        listener.close()
        raise DistributedSetupError(
            f"process 0 cannot listen on the coordinator's port {port} "
            f"({error.strerror}): another process 0 of this run (two "
            "processes with process_id 0?) or another program holds it."
        ) from None
    return listener


# What JAX's collectives and coordination service say when another process of the
# run has died (Gloo's TCP pairs, the coordination service's heartbeats).
_LOST_PROCESS_MARKERS = (
    "Gloo",
    "Connection reset by peer",
    "coordination service",
    "heartbeat",
)


def lost_another_process(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) is a collective or
    coordination failure of a multi-process run: another process died, and
    this one cannot go on alone (e.g. a checkpoint save whose collective broke
    is not a disk problem)."""
    while error is not None:
        if any(marker in str(error) for marker in _LOST_PROCESS_MARKERS):
            return True
        error = error.__cause__ or error.__context__
    return False


def is_primary_process() -> bool:
    """Whether this process writes the run's files (process 0; always True in a
    single-process run)."""
    return jax.process_index() == 0


def sync_processes(name: str) -> None:
    """Waits until every process has reached the point called ``name`` (no-op in
    a single-process run), e.g. before reading what process 0 wrote."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
