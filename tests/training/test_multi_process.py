"""Training over two processes (jax.distributed on localhost, Gloo collectives)
equals training in one process, on 2 devices or on 1, over the same batches."""

import json
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.helpers.multi_process_training import BATCHES_PER_STEP, NUM_EPOCHS
from tests.helpers.subprocesses import ROOT
from tests.training.test_training_loop import build_splits_and_info

MODULE = "tests.helpers.multi_process_training"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def run_processes(commands: list[list[str]], timeout: float) -> None:
    """Runs the commands at once; fails with the end of a failed one's stderr."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", MODULE, *command],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    try:
        outputs = [process.communicate(timeout=timeout) for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-4000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("multi_process")
    port = str(free_port())
    run_processes(
        [["distributed", str(i), port, str(out)] for i in (0, 1)], timeout=600
    )
    run_processes([["local", str(out)]], timeout=600)
    results = {
        f"process_{i}": json.loads((out / f"process_{i}.json").read_text())
        for i in (0, 1)
    }
    results |= json.loads((out / "local.json").read_text())
    return out, results


def load_params(path):
    with np.load(path) as arrays:
        return np.concatenate([np.ravel(arrays[k]) for k in sorted(arrays.files)])


def test_two_processes_train_as_one_process_on_two_devices_or_one(runs):
    out, results = runs
    two_processes = load_params(out / "two_processes.npz")
    for name in ("two_devices", "one_device", "resumed_on_one_device"):
        other = load_params(out / f"{name}.npz")
        np.testing.assert_allclose(two_processes, other, rtol=1e-6, atol=1e-6)
    (train_set, _, _), _ = build_splits_and_info()
    steps = NUM_EPOCHS * train_set.num_steps(BATCHES_PER_STEP)
    for name in ("process_0", "process_1", "two_devices", "one_device"):
        assert results[name]["num_steps"] == steps, name
    assert [results[n]["mesh_size"] for n in ("process_0", "two_devices")] == [2, 2]
    assert results["one_device"]["mesh_size"] == 1
    assert results["resumed_on_one_device"]["resumed_from"] == 1
    assert (
        "multiple of the number of devices of the mesh (2)"
        in (results["odd_batches_per_step"])
    )
    # The validation metrics, reduced over both processes, are the same numbers
    # (only process 0 runs the loggers).
    assert results["process_1"]["records"] == []
    losses = [record[2]["loss"] for record in results["process_0"]["records"]]
    assert [r[1] for r in results["process_0"]["records"]] == [0, 1, 2]
    assert losses[-1] < 0.9 * losses[0], losses  # it trained
    for left, right in zip(
        results["process_0"]["records"], results["one_device"]["records"], strict=True
    ):
        assert left[:2] == right[:2]
        assert left[2]["loss"] == pytest.approx(right[2]["loss"], rel=1e-5)


def test_each_process_reads_only_its_devices_batches(runs):
    _, results = runs
    (train_set, _, _), _ = build_splits_and_info()
    for process in (0, 1):
        expected = []
        for epoch in range(1, NUM_EPOCHS + 1):
            for _, batches in train_set.steps(epoch, BATCHES_PER_STEP):
                if process < len(batches):
                    expected += batches[process].tolist()
        assert results[f"process_{process}"]["reads"] == expected
    both = results["process_0"]["reads"] + results["process_1"]["reads"]
    assert sorted(both) == sorted(results["one_device"]["reads"])
    assert sorted(both) == sorted(list(range(len(train_set.graphs))) * NUM_EPOCHS)


def start_cli_processes(output_dir, port: int, *flags: str) -> list[subprocess.Popen]:
    """``mlip-eqx train`` as both processes of a two-process run (small MACE)."""
    command = [
        sys.executable, "-m", "mlip_eqx.cli", "train",
        "--output-dir", str(output_dir), "--demo-structures", "120",
        "--epochs", "3", "--batch-size", "2", "--num-channels", "8",
        "--l-max", "1", "--num-layers", "1", "--no-plots",
        "--coordinator", f"localhost:{port}", "--num-processes", "2",
        "--heartbeat-timeout-seconds", "15", *flags,
    ]  # fmt: skip
    return [
        subprocess.Popen(
            [*command, "--process-id", str(i)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (0, 1)
    ]


def test_killed_process_stops_the_other_and_a_restart_resumes(tmp_path):
    output_dir = tmp_path / "run"
    first = start_cli_processes(output_dir, free_port())
    try:
        deadline = time.monotonic() + 400
        while not (output_dir / "model" / "1").is_dir():  # epoch 1 checkpointed
            assert time.monotonic() < deadline, "no checkpoint of epoch 1"
            assert first[0].poll() is None, first[0].communicate()[1][-3000:]
            time.sleep(0.05)
        time.sleep(0.3)  # into epoch 2
        first[1].kill()
        killed_at = time.monotonic()
        _, stderr = first[0].communicate(timeout=120)
        stopped_after = time.monotonic() - killed_at
    finally:
        for process in first:
            process.kill()
    assert first[0].returncode == 1, stderr[-3000:]
    assert stopped_after < 45  # the heartbeat timeout (15 s) bounds it
    assert "process 0 of 2 stopped" in stderr and "--resume" in stderr, stderr[-3000:]
    saved = sorted(int(p.name) for p in (output_dir / "model").iterdir())
    assert saved and saved[-1] < 3

    second = start_cli_processes(output_dir, free_port(), "--resume")
    try:
        outputs = [process.communicate(timeout=400) for process in second]
    finally:
        for process in second:
            process.kill()
    for process, (_, stderr) in zip(second, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    log = outputs[0][1]
    assert f"Resuming training after epoch {saved[-1]}." in log
    assert outputs[1][1].count("Epoch") == 0  # process 1 does not report
    records = [json.loads(line) for line in open(output_dir / "metrics.jsonl")]
    train_epochs = [r["epoch"] for r in records if r["category"] == "TRAIN_METRICS"]
    assert train_epochs == [1, 2, 3]
    assert (output_dir / "model.zip").is_file()


ALL_DEVICES = """
import os, sys
flags = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = flags + " --xla_force_host_platform_device_count=2"
from mlip_eqx.cli import main
arguments = sys.argv[1:]
try:
    main([*arguments[:-1], "3"])  # 3 batches per step
except SystemExit as exit:  # the message
    print(exit.code, file=sys.stderr)
print("even:", main(arguments), file=sys.stderr)
"""


def test_all_devices_flag_trains_on_every_local_device(tmp_path):
    """``--all-devices`` trains on both local CPU devices; batches per step that
    do not divide among them are refused first, with a message."""
    result = subprocess.run(
        [sys.executable, "-c", ALL_DEVICES, "train", "--all-devices",
         "--output-dir", str(tmp_path / "run"), "--demo-structures", "24",
         "--epochs", "1", "--batch-size", "2", "--num-channels", "8",
         "--l-max", "1", "--num-layers", "1", "--no-plots",
         "--batches-per-step", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    log, exit_code = result.stderr.split("\neven: ")
    assert "batches_per_step=3 must be a multiple of the number of devices of " \
        "the mesh (2)" in log, log[-3000:]  # fmt: skip
    assert "Training on 2 device(s) of 1 process(es), 1 batch(es) per device" in log
    assert exit_code.strip() == "0"
