"""The processes of a multi-process run check each other before JAX joins them
(process 0 and the others as threads of this process, on a loopback port)."""

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlip_eqx.training.join_handshake import (
    JoinError,
    ProcessAnnouncement,
    announce_to_coordinator,
    gather_processes,
)


def listening_socket() -> tuple[socket.socket, str]:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener, f"127.0.0.1:{listener.getsockname()[1]}"


def join(num_processes: int, others: list[tuple[int, int]], timeout: float = 5.0):
    """Runs process 0 (``num_processes``) and the others (``(id, number)``);
    returns process 0's outcome, the others' outcomes (None or the error) and
    the coordinator address."""
    listener, coordinator = listening_socket()
    deadline = time.monotonic() + timeout

    def announce(process_id, number):
        announcement = ProcessAnnouncement(process_id, number, f"node{process_id}")
        announce_to_coordinator(coordinator, announcement, deadline)

    def outcome(future):
        error = future.exception()
        return None if error is None else error

    with ThreadPoolExecutor(len(others) + 1) as pool:
        zero = pool.submit(gather_processes, listener, num_processes, deadline)
        futures = [pool.submit(announce, *other) for other in others]
        zero_outcome = outcome(zero)
        if zero_outcome is None:  # JAX's service takes the port: it is free
            _, port = coordinator.rsplit(":", 1)
            with socket.socket() as service:
                service.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                service.bind(("127.0.0.1", int(port)))
                service.listen()
                others_outcomes = [outcome(future) for future in futures]
        else:
            others_outcomes = [outcome(future) for future in futures]
    return zero_outcome, others_outcomes


def test_every_process_with_its_own_id_and_the_same_number_joins():
    zero, others = join(3, [(2, 3), (1, 3)])
    assert zero is None and others == [None, None]


@pytest.mark.parametrize(
    ("num_processes", "others", "message"),
    [(3, [(1, 3), (1, 3)], "two processes with --process-id 1 (on node1 and node1)"),
     (2, [(1, 3)], "process 1 (on node1) was started with --num-processes 3, "
                   "process 0 with 2"),
     (3, [(1, 2)], "process 1 (on node1) was started with --num-processes 2, "
                   "process 0 with 3")],
)  # fmt: skip
def test_processes_that_do_not_fit_together_all_stop_with_one_message(
    num_processes, others, message
):
    zero, outcomes = join(num_processes, others)
    assert isinstance(zero, JoinError) and message in str(zero), zero
    for outcome in outcomes:  # each with process 0's message
        assert isinstance(outcome, JoinError) and message in str(outcome), outcome


def test_a_missing_process_is_named_when_the_timeout_passes():
    start = time.monotonic()
    zero, (one,) = join(3, [(1, 3)], timeout=1.0)
    assert time.monotonic() - start < 5
    assert isinstance(zero, JoinError)
    assert "process(es) 2 of 3 did not join" in str(zero)
    assert isinstance(one, JoinError) and "process(es) 2 of 3" in str(one)


def test_a_foreign_program_on_the_port_is_named():
    listener, coordinator = listening_socket()
    host, port = coordinator.rsplit(":", 1)
    deadline = time.monotonic() + 5
    with ThreadPoolExecutor(1) as pool:
        zero = pool.submit(gather_processes, listener, 2, deadline)
        with socket.create_connection((host, int(port))) as foreign:
            foreign.sendall(b"GET / HTTP/1.1\r\n\r\n")
            with pytest.raises(JoinError, match="not a process of this run"):
                zero.result()
