"""Several processes: ``liam_core.mesh.distributed`` and ALDA over JAX's multi-controller runtime.

That 2 processes x 4 devices give the digests of 1 x 8 and 1 x 1 is checked with the rest of
the determinism matrix in ``test_alda_determinism.py`` (all topologies run side by side).
Every subprocess started here is waited for with a deadline and killed by pid in a
``finally`` block; ports are picked free on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from liam_core import ConfigError, LiamError
from liam_core.mesh import DEFAULT_HEARTBEAT_TIMEOUT_S, distributed

WORKER = Path(__file__).parent / "workers" / "alda_worker.py"
DEADLINE_S = 240


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def worker_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLURM_", "OMPI_", "JAX_COORDINATOR", "XLA_FLAGS"))
    }
    env.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", **extra)
    return env


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or worker_env(),
    )


def kill(processes: list[subprocess.Popen]) -> None:
    """Kill what is still running, by pid, reap it and close its pipes."""
    for process in processes:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def report_of(process: subprocess.Popen, deadline: float) -> dict:
    """Wait (bounded) for a worker and return its JSON report (gloo also prints to stdout)."""
    stdout, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    assert process.returncode == 0, stderr[-4000:]
    lines = [line for line in stdout.splitlines() if line.startswith('{"devices"')]
    assert lines, stdout[-2000:]
    return json.loads(lines[-1])


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_processes": 2}, "missing: coordinator_address, process_id"),
        (
            {"coordinator_address": "localhost", "num_processes": 2, "process_id": 0},
            "coordinator_address must be 'host:port'",
        ),
        (
            {"coordinator_address": "127.0.0.1:70000", "num_processes": 2, "process_id": 0},
            r"port must be in 1\.\.65535",
        ),
        (
            {"coordinator_address": "127.0.0.1:1234", "num_processes": 0, "process_id": 0},
            "num_processes must be a positive int",
        ),
        (
            {"coordinator_address": "127.0.0.1:1234", "num_processes": 2, "process_id": 2},
            r"process_id must be an int in 0\.\.1",
        ),
        ({"heartbeat_timeout_s": 0}, "heartbeat_timeout_s must be a positive int"),
        (
            {"cpu_devices": -1, "num_processes": 1, "process_id": 0, "coordinator_address": "a:1"},
            "cpu_devices",
        ),
    ],
)
def test_bad_distributed_arguments_name_the_setting_before_starting_anything(kwargs, message):
    with pytest.raises(ConfigError, match=message) as error:
        distributed(**kwargs)
    assert isinstance(error.value, LiamError)


def test_the_default_heartbeat_timeout_is_short():
    assert DEFAULT_HEARTBEAT_TIMEOUT_S <= 10


# --------------------------------------------------------------------------- the same bits


@pytest.mark.slow
def test_distributed_reads_its_settings_from_a_slurm_environment():
    port = free_port()
    processes = []
    try:
        for rank in range(2):
            env = worker_env(
                SLURM_JOB_ID="4242",
                SLURM_STEP_NODELIST="127.0.0.1",
                SLURM_NTASKS="2",
                SLURM_PROCID=str(rank),
                SLURM_LOCALID=str(rank),
                JAX_COORDINATOR_PORT=str(port),
            )
            processes.append(
                start(
                    "--devices",
                    "2",
                    "--from-env",
                    "--workloads",
                    "sum",
                    "--executors",
                    "shard_map",
                    env=env,
                )
            )
        deadline = time.monotonic() + 120
        reports = [report_of(p, deadline) for p in processes]
    finally:
        kill(processes)
    assert [r["process_id"] for r in reports] == [0, 1]
    assert all(r["global_devices"] == 4 for r in reports)
    assert reports[0]["digests"]["shard_map/sum"] == reports[1]["digests"]["shard_map/sum"]


# --------------------------------------------------------------------------- a lost peer


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0], ids=["peer", "coordinator"])
def test_a_killed_peer_stops_the_survivor_with_a_clear_error_within_30_seconds(victim):
    port = free_port()
    processes = [
        start(
            "--devices",
            "2",
            "--processes",
            "2",
            "--process-id",
            str(rank),
            "--port",
            str(port),
            "--mode",
            "loop",
            "--seconds",
            "120",
        )
        for rank in range(2)
    ]
    survivor = processes[1 - victim]
    try:
        deadline = time.monotonic() + 120
        while True:  # wait, bounded, until the survivor is computing
            assert time.monotonic() < deadline, "the processes never started computing"
            assert survivor.poll() is None, survivor.stderr.read()[-3000:]
            line = survivor.stdout.readline()
            if line.startswith("tick 2"):
                break
        os.kill(processes[victim].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        try:
            _, stderr = survivor.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("the survivor was still running 30 s after its peer was killed")
        waited = time.monotonic() - killed_at
    finally:
        kill(processes)
    assert survivor.returncode != 0
    assert waited < 30
    assert "Terminating process because the JAX distributed service detected fatal errors" in stderr
    assert "another task died" in stderr
