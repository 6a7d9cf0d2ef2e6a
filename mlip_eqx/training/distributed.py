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
    Before handing over to JAX (whose own failures abort the process), process
    0 checks that it can listen on the coordinator's port and the others wait
    for it to accept connections, logging what they wait for.

    Raises:
        DistributedSetupError: The coordinator's port is taken (another process
            0, or another program), or it did not accept connections within the
            timeout (process 0 not started, or a wrong address).
    """
    deadline = time.monotonic() + config.initialization_timeout_seconds
    if config.process_id == 0:
        _check_port_free(config.coordinator)
    else:
        _wait_for_coordinator(config, deadline)
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


def _host_and_port(coordinator: str) -> tuple[str, int]:
    host, _, port = coordinator.rpartition(":")
    return host.strip("[]"), int(port)


def _check_port_free(coordinator: str) -> None:
    """Raises unless this host can listen on the coordinator's port."""
    _, port = _host_and_port(coordinator)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError as error:
            raise DistributedSetupError(
                f"process 0 cannot listen on the coordinator's port {port} "
                f"({error.strerror}): another process 0 of this run (two "
                "processes with process_id 0?) or another program holds it."
            ) from None


def _wait_for_coordinator(config: DistributedConfig, deadline: float) -> None:
    """Waits until the coordinator accepts a connection, logging every 10 s."""
    host, port = _host_and_port(config.coordinator)
    logger.info(
        "Process %d of %d: waiting up to %d s for the coordinator (process 0) at %s.",
        config.process_id,
        config.num_processes,
        config.initialization_timeout_seconds,
        config.coordinator,
    )
    next_report = time.monotonic() + 10.0
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as error:
            reason = error.strerror or str(error)
        now = time.monotonic()
        if now >= deadline:
            raise DistributedSetupError(
                f"process {config.process_id}: the coordinator {config.coordinator} "
                f"did not accept a connection within "
                f"{config.initialization_timeout_seconds} s ({reason}): is process "
                "0 running there, with the same --coordinator?"
            )
        if now >= next_report:
            logger.info(
                "Still waiting for the coordinator at %s (%s).",
                config.coordinator,
                reason,
            )
            next_report = now + 10.0
        time.sleep(0.2)


def is_primary_process() -> bool:
    """Whether this process writes the run's files (process 0; always True in a
    single-process run)."""
    return jax.process_index() == 0


def sync_processes(name: str) -> None:
    """Waits until every process has reached the point called ``name`` (no-op in
    a single-process run), e.g. before reading what process 0 wrote."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
