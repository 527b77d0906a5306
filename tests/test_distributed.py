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
import subprocess
import sys
import time

import pytest
from _helpers import ROOT, WORKERS, clean_env, free_port, kill, start_python

from liam_core import ConfigError, LiamError
from liam_core.mesh import DEFAULT_HEARTBEAT_TIMEOUT_S, distributed

WORKER = WORKERS / "alda_worker.py"


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start the ALDA worker with ``args`` in a clean environment."""
    return start_python(WORKER, args, env=env)


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
        (
            {"num_processes": 2},
            r"distributed: `coordinator_address`, `num_processes` and `process_id` must be given "
            r"together.*got num_processes without coordinator_address, process_id",
        ),
        (
            {"coordinator_address": "localhost", "num_processes": 2, "process_id": 0},
            r"distributed: `coordinator_address` must be 'host:port' .*, got 'localhost'",
        ),
        (
            {"coordinator_address": "127.0.0.1:70000", "num_processes": 2, "process_id": 0},
            r"`coordinator_address` must have a port in \[1, 65535\], got 70000",
        ),
        (
            {"coordinator_address": "127.0.0.1:1234", "num_processes": 0, "process_id": 0},
            r"distributed: `num_processes` must be an int >= 1, got 0",
        ),
        (
            {"coordinator_address": "127.0.0.1:1234", "num_processes": 2, "process_id": 2},
            r"distributed: `process_id` must be an int in \[0, 1\] \(num_processes=2\), got 2",
        ),
        (
            {"heartbeat_timeout_s": 0},
            r"distributed: `heartbeat_timeout_s` must be an int >= 1 \(seconds\), got 0",
        ),
        (
            {"initialization_timeout_s": "60"},
            r"`initialization_timeout_s` must be an int >= 1 \(seconds\), got str: '60'",
        ),
        (
            {"cpu_devices": -1, "num_processes": 1, "process_id": 0, "coordinator_address": "a:1"},
            r"distributed: `cpu_devices` must be an int >= 1, got -1",
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
            env = clean_env(
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


# --------------------------------------------------------------------------- missing peers

_ALONE = """
import sys
from liam_core import DistributedError
from liam_core.mesh import distributed
try:
    distributed(sys.argv[1], num_processes=2, process_id=int(sys.argv[2]),
                initialization_timeout_s=3)
except DistributedError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
"""


@pytest.mark.slow
@pytest.mark.parametrize("process_id", [0, 1], ids=["coordinator", "peer"])
def test_a_process_whose_peers_never_come_fails_with_one_line_within_its_timeout(process_id):
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", _ALONE, address, str(process_id)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=clean_env(),
    )
    waited = time.monotonic() - started
    assert result.returncode == 2, result.stderr[-3000:]  # not 134, JAX's abort
    assert "Check failure stack trace" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(
        f"error: distributed: process {process_id} waited 3 s for all 2 processes to join the "
        f"coordinator at {address}, in vain; "
    )
    assert "mesh.processes.init_timeout_s" in line
    assert waited < 3 + 30  # start-up, the wait, and the coordinator's shutdown
