"""Resuming is exact: a run killed at any step, or moved to another device count, ends the same.

Each run is a subprocess (``tests/workers/train_worker.py``) because JAX fixes the device
count when its backend starts, and because only a real process can be killed with SIGKILL.
The reference is a run on 2 devices that was never interrupted.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _helpers import WORKERS, clean_env, kill, start_python

WORKER = WORKERS / "train_worker.py"
TIMEOUT_S = 180
STEPS = 40  # the worker's default; checkpoints every 5 steps, the newest 3 kept

pytestmark = pytest.mark.slow


def _start(devices: int, run_dir: Path, *extra: str) -> subprocess.Popen:
    run_dir.mkdir(parents=True, exist_ok=True)
    # stderr to a file: a pipe nobody reads while the test follows stdout could fill up.
    with (run_dir / f"stderr-{devices}.txt").open("a") as stderr:
        return start_python(
            WORKER,
            ["--devices", str(devices), "--run-dir", str(run_dir), *extra],
            env=clean_env(),
            stderr=stderr,
        )


def _run(devices: int, run_dir: Path, *extra: str) -> dict[str, Any]:
    process = _start(devices, run_dir, *extra)
    try:
        stdout, _ = process.communicate(timeout=TIMEOUT_S)
    finally:
        kill([process])
    stderr = (run_dir / f"stderr-{devices}.txt").read_text()
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Any]:
    result = _run(2, tmp_path_factory.mktemp("reference"))
    assert result["step"] == STEPS and result["resumed_from"] is None
    return result


def test_a_run_killed_with_sigkill_at_a_random_step_resumes_to_the_same_digest(reference, tmp_path):
    kill_at = random.randint(6, STEPS - 6)  # after the first checkpoint, before the end
    process = _start(2, tmp_path, "--step-delay", "0.03")
    try:
        for line in process.stdout:
            if line.strip() == f"step {kill_at}":
                os.kill(process.pid, signal.SIGKILL)
                break
        process.wait(timeout=TIMEOUT_S)
    finally:
        kill([process])
    assert process.returncode == -signal.SIGKILL, f"the run ended before step {kill_at}"
    resumed = _run(2, tmp_path)
    context = f"killed at step {kill_at}, resumed from {resumed['resumed_from']}"
    assert resumed["resumed_from"] is not None and resumed["resumed_from"] >= kill_at - 5, context
    # A kill between orbax's rename and the manifest leaves a step that never counted.
    assert all("its save did not finish" in skipped for skipped in resumed["skipped"]), context
    assert resumed["digest"] == reference["digest"], context
    assert resumed["losses"] == reference["losses"], context  # metrics.jsonl reads the same


def test_a_run_stopped_on_8_devices_and_resumed_on_2_ends_with_the_same_digest(reference, tmp_path):
    stopped = _run(8, tmp_path, "--stop-at", "17")
    assert (stopped["devices"], stopped["step"]) == (8, 17)
    resumed = _run(2, tmp_path)
    assert (resumed["devices"], resumed["resumed_from"], resumed["step"]) == (2, 17, STEPS)
    assert resumed["digest"] == reference["digest"]
    assert resumed["losses"] == reference["losses"]
