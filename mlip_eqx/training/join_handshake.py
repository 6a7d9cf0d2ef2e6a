"""The processes of a multi-process run check each other before JAX joins them.

``jax.distributed.initialize`` aborts the process (an XLA C++ stack trace) when
two processes claim one id, waits until its timeout when one is missing, and
runs anyway when processes disagree on their number. So before it, process 0
listens on the coordinator's port and every other process sends it one line of
JSON: its id, the number of processes it was given and its host. Process 0
answers all of them at once: ``{"ok": true}`` when every id from 1 to
``num_processes - 1`` has arrived once with the same number, else the error,
which every process then raises. Process 0 closes its listener before it
answers, so the port is free for JAX's coordination service, and the others
wait until that service accepts connections.
"""

import json
import logging
import select
import socket
import time
from dataclasses import dataclass

logger = logging.getLogger("mlip_eqx")

REPORT_INTERVAL_SECONDS = 10.0
# How much longer than their own timeout the others wait for process 0's answer:
# process 0 answers when its timeout passes (naming the missing processes), and
# the others, started at about the same time, would otherwise give up with it.
ANSWER_GRACE_SECONDS = 10.0
_MAX_LINE_BYTES = 4096


class JoinError(ValueError):
    """The processes of a run do not fit together (or one never came); the
    message names the processes and the flag to fix."""


@dataclass(frozen=True)
class ProcessAnnouncement:
    """What a process tells process 0 about itself."""

    process_id: int
    num_processes: int
    host: str

    def to_line(self) -> bytes:
        return (json.dumps(self.__dict__) + "\n").encode()

    @classmethod
    def from_line(cls, line: bytes, peer: str) -> "ProcessAnnouncement":
        try:
            fields = json.loads(line)
            return cls(
                int(fields["process_id"]),
                int(fields["num_processes"]),
                str(fields["host"]),
            )
        except (ValueError, KeyError, TypeError):
            raise JoinError(_foreign_program(peer)) from None


def _foreign_program(peer: str) -> str:
    return (
        f"a program at {peer} connected to the coordinator's port but is not a "
        "process of this run (another program, or another mlip_eqx version): is "
        "the port used twice?"
    )


def split_address(coordinator: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` (IPv6 hosts in brackets)."""
    host, _, port = coordinator.rpartition(":")
    return host.strip("[]"), int(port)


def gather_processes(
    listener: socket.socket, num_processes: int, deadline: float
) -> None:
    """Process 0: waits on ``listener`` (bound and listening) until every other
    process has announced itself, checks them, closes the listener and answers.

    Raises:
        JoinError: Two processes with one id, a process given another number of
            processes or an id out of range, or processes missing at
            ``deadline`` (named). The processes that came get the same message.
    """
    joined: dict[int, tuple[socket.socket, ProcessAnnouncement]] = {}
    pending: dict[socket.socket, bytes] = {}
    error = None
    next_report = time.monotonic() + REPORT_INTERVAL_SECONDS
    try:
        while error is None and len(joined) < num_processes - 1:
            now = time.monotonic()
            if now >= deadline:
                error = (
                    f"{_missing_ids(joined, num_processes)} of {num_processes} "
                    "did not join within the initialization timeout: were they "
                    "started, with this --coordinator?"
                )
                break
            if now >= next_report:
                logger.info(
                    "Process 0: %d of %d processes here; waiting for %s.",
                    len(joined) + 1,
                    num_processes,
                    _missing_ids(joined, num_processes),
                )
                next_report = now + REPORT_INTERVAL_SECONDS
            readable, _, _ = select.select(
                [listener, *pending], [], [], min(1.0, deadline - now)
            )
            for ready in readable:
                if ready is listener:
                    connection, _ = listener.accept()
                    pending[connection] = b""
                    continue
                try:
                    announcement = _read_announcement(ready, pending)
                except JoinError as foreign:
                    error = str(foreign)
                    break
                if announcement is not None:
                    error = _check(announcement, joined, num_processes)
                    if error is not None:
                        _send(ready, {"error": error})
                        ready.close()
                        break
                    joined[announcement.process_id] = (ready, announcement)
        listener.close()  # before answering: the port is JAX's from now on
        answer = {"ok": True} if error is None else {"error": error}
        for connection, _ in joined.values():
            _send(connection, answer)
        _wait_for_hang_ups([connection for connection, _ in joined.values()])
    finally:
        listener.close()
        for connection in [*pending, *(c for c, _ in joined.values())]:
            connection.close()
    if error is not None:
        raise JoinError(error)


def announce_to_coordinator(
    coordinator: str, announcement: ProcessAnnouncement, deadline: float
) -> None:
    """A process other than 0: connects to process 0 (retrying until
    ``deadline``, logging what it waits for), announces itself and waits for
    the answer, then until JAX's coordination service accepts connections.

    Raises:
        JoinError: Process 0 refused the run (its message), or did not accept
            a connection by ``deadline``, or no answer came within
            ``ANSWER_GRACE_SECONDS`` after it.
    """
    host, port = split_address(coordinator)
    what = f"process {announcement.process_id}"
    connection = _connect_until(host, port, deadline, what, "the coordinator")
    with connection:
        connection.sendall(announcement.to_line())
        reply = _read_reply(connection, deadline, coordinator, what)
    if "error" in reply:
        raise JoinError(f"{what}: {reply['error']}")
    _connect_until(host, port, deadline, what, "JAX's coordination service").close()


def _check(
    announcement: ProcessAnnouncement,
    joined: dict[int, tuple[socket.socket, ProcessAnnouncement]],
    num_processes: int,
) -> str | None:
    """The error of a newly arrived process, if any."""
    process_id = announcement.process_id
    if announcement.num_processes != num_processes:
        return (
            f"process {process_id} (on {announcement.host}) was started with "
            f"--num-processes {announcement.num_processes}, process 0 with "
            f"{num_processes}: give every process the same number."
        )
    if process_id in joined:
        first = joined[process_id][1].host
        return (
            f"two processes with --process-id {process_id} (on {first} and "
            f"{announcement.host}): give each process its own id, 1 to "
            f"{num_processes - 1} besides process 0."
        )
    return None


def _missing_ids(joined: dict, num_processes: int) -> str:
    missing = [i for i in range(1, num_processes) if i not in joined]
    return "process(es) " + ", ".join(map(str, missing))


def _read_announcement(
    connection: socket.socket, pending: dict[socket.socket, bytes]
) -> ProcessAnnouncement | None:
    """The announcement once its whole line has arrived (removed from
    ``pending``); None while it is incomplete or if the peer hung up."""
    try:
        peer = "{}:{}".format(*connection.getpeername()[:2])
        chunk = connection.recv(_MAX_LINE_BYTES)
    except OSError:
        chunk = b""
    if not chunk:  # hung up before announcing: e.g. a port probe
        del pending[connection]
        connection.close()
        return None
    pending[connection] += chunk
    line, newline, _ = pending[connection].partition(b"\n")
    if not newline:
        if len(pending[connection]) > _MAX_LINE_BYTES:
            raise JoinError(_foreign_program(peer))
        return None
    del pending[connection]
    return ProcessAnnouncement.from_line(line, peer)


def _send(connection: socket.socket, message: dict) -> None:
    try:
        connection.sendall((json.dumps(message) + "\n").encode())
    except OSError:  # that process is gone; the others still get the answer
        pass


def _wait_for_hang_ups(connections: list[socket.socket], timeout: float = 5.0) -> None:
    """Lets the other processes close first, so that process 0 keeps no
    connection of the port in TIME_WAIT when JAX binds it."""
    open_connections = list(connections)
    end = time.monotonic() + timeout
    while open_connections and time.monotonic() < end:
        readable, _, _ = select.select(open_connections, [], [], 0.2)
        for connection in readable:
            try:
                if not connection.recv(_MAX_LINE_BYTES):
                    open_connections.remove(connection)
            except OSError:
                open_connections.remove(connection)


def _connect_until(
    host: str, port: int, deadline: float, what: str, target: str
) -> socket.socket:
    """A connection to ``host:port``, retried every 0.2 s until ``deadline``."""
    logger.info("%s: connecting to %s at %s:%d.", what.capitalize(), target, host, port)
    next_report = time.monotonic() + REPORT_INTERVAL_SECONDS
    while True:
        try:
            return socket.create_connection((host, port), timeout=1.0)
        except OSError as error:
            reason = error.strerror or str(error)
        now = time.monotonic()
        if now >= deadline:
            raise JoinError(
                f"{what}: {target} at {host}:{port} did not accept a connection "
                f"within the initialization timeout ({reason}): is process 0 "
                "running there, with the same --coordinator?"
            )
        if now >= next_report:
            logger.info(
                "Still waiting for %s at %s:%d (%s).", target, host, port, reason
            )
            next_report = now + REPORT_INTERVAL_SECONDS
        time.sleep(0.2)


def _read_reply(
    connection: socket.socket, deadline: float, coordinator: str, what: str
) -> dict:
    """Process 0's answer (one JSON line)."""
    received = b""
    while b"\n" not in received:
        remaining = deadline + ANSWER_GRACE_SECONDS - time.monotonic()
        if remaining <= 0:
            raise JoinError(
                f"{what}: process 0 at {coordinator} did not answer within the "
                "initialization timeout (it waits for every process: were all "
                "started?)."
            )
        connection.settimeout(remaining)
        try:
            chunk = connection.recv(_MAX_LINE_BYTES)
        except TimeoutError:
            continue
        if not chunk:
            raise JoinError(
                f"{what}: process 0 at {coordinator} closed the connection "
                "without an answer (it stopped, or it is not a process of this run)."
            )
        received += chunk
    return json.loads(received.partition(b"\n")[0])
